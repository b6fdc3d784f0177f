-- hold_release: end the hold (a probe succeeded) and keep it in the bounded hold history.
-- KEYS[1] hold     HASH code, info, since_ms, next_probe_ms, probes, min_probe_ms
-- KEYS[2] probed   HASH group -> ms of its latest probe in this hold
-- KEYS[3] holds    ZSET JSON {since_ms, end_ms, code, info, probes} -> end ms
-- ARGV[1] how many ended holds the history keeps
-- Returns 1 when a hold ended, 0 when there was none (another worker released it first).
local K_HOLD, K_PROBED, K_HOLDS = KEYS[1], KEYS[2], KEYS[3]
proceed_when_full(K_HOLD)  -- first write: a hold is probed and lifted on a full Redis (see _lib.lua)
local since, code, info, probes = unpack(redis.call('HMGET', K_HOLD, 'since_ms', 'code', 'info', 'probes'))
if not since then return 0 end
local now = now_ms()
-- The history lets max_age leave out time on hold (delivery.py) and shows operators past holds.
redis.call('ZADD', K_HOLDS, now, cjson.encode({
  since_ms = tonumber(since), end_ms = now, code = tonumber(code), info = info or '', probes = tonumber(probes or 0)}))
redis.call('ZREMRANGEBYRANK', K_HOLDS, 0, -(tonumber(ARGV[1]) + 1))
redis.call('DEL', K_HOLD, K_PROBED)
return 1
