-- limit_reset: an operator reverts the app's rate limit to the configured one (imunban limit --reset), audited.
-- KEYS[1] outcomes   STREAM the audit entry (outcome 'audit', action 'limit'; count 0 when none was set)
-- KEYS[2] limit      HASH rate_per_s, since_ms, role, via, client (deleted)
-- ARGV[1] the configured rate, calls/s (for the audit text)
-- ARGV[2] role   ARGV[3] via   ARGV[4] client (who reset it)   ARGV[5] outcome stream cap
-- Returns the live rate that ended as text, or '' when none was set.
local K_OUTCOMES, K_LIMIT = KEYS[1], KEYS[2]
proceed_when_full(K_LIMIT)  -- a reset must work on a full Redis too (it frees a few bytes; see _lib.lua)
local now = now_ms()
local before = redis.call('HGET', K_LIMIT, 'rate_per_s') or ''
redis.call('DEL', K_LIMIT)
local info = 'rate limit reset: no live limit was set'
if before ~= '' then
  info = string.format('rate limit reset to the configured %s calls/s (was %s)', ARGV[1], before)
end
emit_audit(K_OUTCOMES, ARGV[5], 'limit', before ~= '' and 1 or 0, info, {ARGV[2], ARGV[3], ARGV[4]}, now)
return before
