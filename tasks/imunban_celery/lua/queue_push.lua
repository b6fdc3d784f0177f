-- queue_push: publish one internal message (a delivery run) also on a full Redis. Delivery is what frees
-- memory, and the pump's runs are bounded (one per dispatch marker), so their messages may use the room
-- that intake leaves (IMUNBAN_INTAKE_MEMORY_FRACTION); producers' messages to the public queue are not
-- published this way. LTRIM 0 -1 (keeps everything) goes first: a write that cannot grow memory, so
-- Redis lets the script through at maxmemory (it checks only a script's first write).
-- KEYS[1] the queue (LIST)   ARGV[1] the message
-- Returns the queue's length.
local K_QUEUE = KEYS[1]
redis.call('LTRIM', K_QUEUE, 0, -1)
return redis.call('LPUSH', K_QUEUE, ARGV[1])
