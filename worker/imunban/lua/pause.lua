-- pause: an operator stops delivery of the app (imunban pause, the console) and the act is audited, in one step.
-- While paused nothing is sent: claim, dispatch and the limiter refuse (probes too: a hold no probe lifts);
-- the backlog stays as it is and keeps being promoted. Pausing again replaces the reason, keeps since_ms.
-- KEYS[1] outcomes   STREAM the audit entry (outcome 'audit', action 'pause')
-- KEYS[2] pause      HASH reason, since_ms, role, via, client (absent = not paused)
-- ARGV[1] reason   ARGV[2] role   ARGV[3] via   ARGV[4] client (who paused)   ARGV[5] outcome stream cap
-- Returns {1, since_ms} when newly paused, {0, since_ms} when it was paused already.
local K_OUTCOMES, K_PAUSE = KEYS[1], KEYS[2]
proceed_when_full(K_PAUSE)  -- an operator may pause a full Redis too (a few bytes; see _lib.lua)
local now = now_ms()
local since = tonumber(redis.call('HGET', K_PAUSE, 'since_ms'))
local new = 0
if not since then
  since, new = now, 1
end
redis.call('HSET', K_PAUSE, 'reason', ARGV[1], 'since_ms', since, 'role', ARGV[2], 'via', ARGV[3], 'client', ARGV[4])
emit_audit(K_OUTCOMES, ARGV[5], 'pause', new, ARGV[1], {ARGV[2], ARGV[3], ARGV[4]}, now)
return {new, since}
