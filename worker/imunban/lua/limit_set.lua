-- limit_set: an operator sets the app's live rate limit (imunban limit RATE, the console), audited in one step.
-- Every worker's limiter reads it (cached at most LIVE_LIMIT_CACHE_S) and paces its reservations by it.
-- KEYS[1] outcomes   STREAM the audit entry (outcome 'audit', action 'limit')
-- KEYS[2] limit      HASH rate_per_s, since_ms, role, via, client (absent = the configured limit)
-- ARGV[1] rate, calls/s (validated by the caller)   ARGV[2] the configured rate, calls/s (for the audit text)
-- ARGV[3] role   ARGV[4] via   ARGV[5] client (who set it)   ARGV[6] outcome stream cap
-- Returns the previous live rate as text, or '' when the configured one applied.
local K_OUTCOMES, K_LIMIT = KEYS[1], KEYS[2]
proceed_when_full(K_LIMIT)  -- an operator may lower the limit on a full Redis too (a few bytes; see _lib.lua)
local now = now_ms()
local before = redis.call('HGET', K_LIMIT, 'rate_per_s') or ''
redis.call('HSET', K_LIMIT, 'rate_per_s', ARGV[1], 'since_ms', now, 'role', ARGV[3], 'via', ARGV[4],
  'client', ARGV[5])
local was = before ~= '' and before or (ARGV[2] .. ' (configured)')
emit_audit(K_OUTCOMES, ARGV[6], 'limit', 1, string.format('rate limit %s calls/s (was %s)', ARGV[1], was),
  {ARGV[3], ARGV[4], ARGV[5]}, now)
return before
