-- unacked_add: record a message the consumer just popped (BRPOP) as unacknowledged, also on a full Redis.
-- kombu writes these two entries inside MULTI, which Redis refuses at maxmemory: the popped message was
-- then in neither its queue nor `unacked` (lost), and the worker stopped. ZREM of the tag goes first, a
-- write that cannot grow memory, so Redis lets the script through (it checks only a script's first
-- write); the entries take about the room the pop has just freed.
-- KEYS[1] unacked_index   ZSET delivery tag -> time it was popped (s)
-- KEYS[2] unacked         HASH delivery tag -> JSON [message, exchange, routing key]
-- ARGV[1] delivery tag   ARGV[2] time (s)   ARGV[3] the JSON kept
-- Returns 1.
local K_UNACKED_INDEX, K_UNACKED = KEYS[1], KEYS[2]
redis.call('ZREM', K_UNACKED_INDEX, ARGV[1])
redis.call('ZADD', K_UNACKED_INDEX, ARGV[2], ARGV[1])
redis.call('HSET', K_UNACKED, ARGV[1], ARGV[3])
return 1
