-- resume: end an operator's pause, keep it in the hold history, wake a pump, and audit it, in one step.
-- The ended pause goes to the history as a hold with code 0, so time paused (like time held) does not count
-- toward a request's maximum age, and the console lists it with the holds.
-- KEYS[1] outcomes   STREAM the audit entry (outcome 'audit', action 'resume'; count 0 when not paused)
-- KEYS[2] pause      HASH reason, since_ms, role, via, client
-- KEYS[3] holds      ZSET JSON {since_ms, end_ms, code, info, probes} -> end ms
-- KEYS[4] wake       LIST a waiting pump BLPOPs it: delivery restarts at once
-- ARGV[1] role   ARGV[2] via   ARGV[3] client (who resumed)   ARGV[4] outcome stream cap
-- ARGV[5] how many ended holds the history keeps
-- Returns {} when delivery was not paused, else {since_ms, reason, now_ms} of the pause that ended (now: its end).
local K_OUTCOMES, K_PAUSE, K_HOLDS, K_WAKE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
proceed_when_full(K_PAUSE)  -- resuming must work on a full Redis: delivery is what frees memory
local now = now_ms()
local who = {ARGV[1], ARGV[2], ARGV[3]}
local since, reason = unpack(redis.call('HMGET', K_PAUSE, 'since_ms', 'reason'))
if not since then
  emit_audit(K_OUTCOMES, ARGV[4], 'resume', 0, 'resume: delivery was not paused', who, now)
  return {}
end
reason = reason or ''
redis.call('ZADD', K_HOLDS, now, cjson.encode({
  since_ms = tonumber(since), end_ms = now, code = 0, info = 'paused: ' .. reason, probes = 0}))
redis.call('ZREMRANGEBYRANK', K_HOLDS, 0, -(tonumber(ARGV[5]) + 1))
redis.call('DEL', K_PAUSE)
wake(K_WAKE)
local paused_s = math.floor((now - tonumber(since)) / 1000)
emit_audit(K_OUTCOMES, ARGV[4], 'resume', 1, string.format('resumed after %d s paused: %s', paused_s, reason), who, now)
return {tonumber(since), reason, now}
