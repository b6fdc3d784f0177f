-- hold_set: hold delivery for the whole app after a configuration error (or extend the hold).
-- KEYS[1] hold   HASH code, info, since_ms, next_probe_ms, probes, min_probe_ms, last_probe_ms (the answer
--                that set or extended the hold was a call: the minimum interval counts from it)
-- ARGV[1] ErrorCode   ARGV[2] ErrorInfo   ARGV[3] first probe delay, ms
-- ARGV[4] the shortest delay between probes for this code, ms (60000 after 70050)
-- Returns the hold's since_ms.
local K_HOLD = KEYS[1]
proceed_when_full(K_HOLD)  -- first write: a hold is recorded on a full Redis (see _lib.lua)
local now = now_ms()
-- The floor is sticky for the hold's life: a 70050 ("retry after 1 minute") still applies when a
-- later probe answers with another configuration code.
local min_probe = math.max(tonumber(ARGV[4]), tonumber(redis.call('HGET', K_HOLD, 'min_probe_ms') or 0))
local delay = math.max(tonumber(ARGV[3]), min_probe)
local since = redis.call('HGET', K_HOLD, 'since_ms')
if not since then
  since = now
  redis.call('HSET', K_HOLD, 'since_ms', now, 'probes', 0)
end
local next_probe = tonumber(redis.call('HGET', K_HOLD, 'next_probe_ms') or 0)
if next_probe < now + delay then next_probe = now + delay end
redis.call('HSET', K_HOLD, 'code', ARGV[1], 'info', ARGV[2], 'next_probe_ms', next_probe,
  'min_probe_ms', min_probe, 'last_probe_ms', now)
return tonumber(since)
