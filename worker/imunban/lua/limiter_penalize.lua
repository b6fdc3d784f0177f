-- limiter_penalize: the API said "too fast"; push the shared schedule back so every worker slows down.
-- KEYS[1] limiter:{sdkappid}   STRING theoretical arrival time (TAT), microseconds
-- ARGV[1] how far from now the next slot may be, microseconds
-- ARGV[2] the furthest ahead of now a TAT can legitimately be, microseconds (see limiter_reserve.lua):
--         a TAT further ahead is corrupt and restarts from now before the push
-- Returns the new TAT lead over now, microseconds.
local K_LIMITER = KEYS[1]
proceed_when_full(K_LIMITER)  -- first write: delivery drains a full Redis (see _lib.lua)
local now = now_us()
local tat = tonumber(redis.call('GET', K_LIMITER) or now)
if tat - now > tonumber(ARGV[2]) then tat = now end
local pushed = now + tonumber(ARGV[1])
if pushed > tat then tat = pushed end
redis.call('SET', K_LIMITER, string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
return tat - now
