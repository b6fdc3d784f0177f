-- dispatch_touch: a running delivery task refreshes its dispatch marker (only if it still exists).
-- KEYS[1] dispatch   ZSET "group SEP slot" -> ms the marker expires
-- ARGV[1] marker ("group SEP slot")   ARGV[2] ttl_ms
-- Returns 1 if refreshed, 0 if the marker had expired (a new task may have been dispatched).
local K_DISPATCH = KEYS[1]
return redis.call('ZADD', K_DISPATCH, 'XX', 'CH', now_ms() + tonumber(ARGV[2]), ARGV[1])
