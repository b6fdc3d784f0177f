-- evidence_10007: is this 10007 about one group (its type), or is the app's switch off (global)?
-- 10007 is per-group only when another group of the app got a delivered answer recently: the switch
-- is evidently on. A member this answer would dead-letter needs more: a success of another group
-- after its own first failure, so a success from before the switch went off never dead-letters.
-- KEYS[1] meta        HASH request id -> "attempts|first_failure_ms|last_code|due_ms"
-- KEYS[2] ok_groups   HASH g1, t1, g2, t2 (the last two distinct groups delivered to, ack.lua)
-- ARGV[1] group id   ARGV[2] window ms   ARGV[3..] members this answer would dead-letter
-- Returns 1 when the 10007 is per-group (retry as usual, dead-letter those members), 0 when it is
-- global or in doubt (hold the app).
local K_META, K_OK_GROUPS = KEYS[1], KEYS[2]
local group = ARGV[1]
local g1, t1, g2, t2 = unpack(redis.call('HMGET', K_OK_GROUPS, 'g1', 't1', 'g2', 't2'))
-- The two are distinct groups, so at least one of them is another group when there are two.
local seen = 0
if g1 and g1 ~= group then seen = tonumber(t1)
elseif g2 and g2 ~= group then seen = tonumber(t2) end
if seen == 0 or seen < now_ms() - tonumber(ARGV[2]) then return 0 end
for i = 3, #ARGV do
  local _, first = parse_meta(redis.call('HGET', K_META, group .. SEP .. ARGV[i]))
  if first and first > seen then return 0 end
end
return 1
