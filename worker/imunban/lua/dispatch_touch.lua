-- dispatch_touch: a running delivery task refreshes its dispatch marker (only if it still exists).
-- KEYS[1] dispatch   ZSET "group SEP slot" -> ms the marker expires
-- ARGV[1] marker ("group SEP slot")   ARGV[2] ttl_ms
-- Returns 1 if refreshed, 0 if the marker had expired (a new task may have been dispatched).
local K_DISPATCH = KEYS[1]
proceed_when_full(K_DISPATCH)  -- first write: delivery drains a full Redis (see _lib.lua)
-- Not ZADD XX CH's count: a refresh within the same millisecond changes no score and would count 0.
if not redis.call('ZSCORE', K_DISPATCH, ARGV[1]) then return 0 end
redis.call('ZADD', K_DISPATCH, 'XX', now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
