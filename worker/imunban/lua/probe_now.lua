-- probe_now: an operator's "probe now": while delivery is held, make the next probe due as soon as the
-- hold allows (the pump sends it through the normal probe path: hold_probe.lua picks the group). Never
-- earlier than the last probe plus the hold's minimum interval (60 s after 70050, hold.py): pressing it
-- again and again sends no probe sooner. A next probe planned earlier than that stays as it is.
-- KEYS[1] hold   HASH code, info, since_ms, next_probe_ms, probes, min_probe_ms, last_probe_ms
-- Returns 0 when there is no hold, else the time (ms) the next probe is due now.
local K_HOLD = KEYS[1]
proceed_when_full(K_HOLD)  -- first write: a hold is probed on a full Redis too (see _lib.lua)
if redis.call('EXISTS', K_HOLD) == 0 then return 0 end
local now = now_ms()
local next_probe, last, min_probe = unpack(redis.call('HMGET', K_HOLD, 'next_probe_ms', 'last_probe_ms',
  'min_probe_ms'))
local allowed = probe_floor(tonumber(next_probe), tonumber(last), tonumber(min_probe))
if allowed < now then allowed = now end
if not next_probe or tonumber(next_probe) > allowed then
  redis.call('HSET', K_HOLD, 'next_probe_ms', allowed)
  return allowed
end
return tonumber(next_probe)
