-- limiter_reserve: GCRA on the Redis server clock; reserve the next call slot and say how long to wait.
-- KEYS[1] limiter:{sdkappid}   STRING theoretical arrival time (TAT), microseconds
-- ARGV[1] emission interval, microseconds (1e6 / calls per second)
-- ARGV[2] the longest wait a caller accepts, microseconds; a later slot is not reserved
-- Returns {1, wait_us, slot_us} when a slot was reserved (sleep wait_us, then call), {0, wait_us, 0}
-- when refused. slot_us is the reserved slot's start on the server clock (for tests and metrics).
local K_LIMITER = KEYS[1]
local now = now_us()
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', K_LIMITER) or now)
if tat < now then tat = now end
local wait = tat - now
if wait > tonumber(ARGV[2]) then return {0, wait, 0} end
-- The key only matters while the schedule is ahead of now; let an idle limiter expire.
redis.call('SET', K_LIMITER, string.format('%d', tat + interval), 'PX', math.floor((wait + interval) / 1000) + 1000)
return {1, wait, tat}
