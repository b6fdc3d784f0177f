-- dead_clear: delete every dead letter (the set and the info together); purging frees memory, so it
-- must work on a full Redis: DEL cannot grow memory and Redis does not check it at maxmemory, where it
-- refuses a MULTI (even of reads and deletes).
-- KEYS[1] dead   KEYS[2] dead_info
-- Returns how many dead letters there were.
local K_DEAD, K_DEAD_INFO = KEYS[1], KEYS[2]
proceed_when_full(K_DEAD)  -- first write (see _lib.lua)
local count = redis.call('ZCARD', K_DEAD)
redis.call('DEL', K_DEAD, K_DEAD_INFO)
return count
