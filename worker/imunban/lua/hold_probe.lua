-- hold_probe: while held, let exactly one caller at a time probe the API, with exponential backoff.
-- KEYS[1] hold   HASH code, info, since_ms, next_probe_ms, probes, min_probe_ms
-- ARGV[1] base delay ms   ARGV[2] cap ms
-- Returns 0 when there is no hold, -1 when it is not time to probe yet, 1 when the caller may probe.
local K_HOLD = KEYS[1]
if redis.call('EXISTS', K_HOLD) == 0 then return 0 end
local now = now_ms()
local next_probe = tonumber(redis.call('HGET', K_HOLD, 'next_probe_ms') or 0)
if now < next_probe then return -1 end
local probes = redis.call('HINCRBY', K_HOLD, 'probes', 1)
local delay = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) * 2 ^ math.min(probes, 30))
delay = math.max(delay, tonumber(redis.call('HGET', K_HOLD, 'min_probe_ms') or 0))
redis.call('HSET', K_HOLD, 'next_probe_ms', now + delay)
return 1
