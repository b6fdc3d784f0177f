-- claim: take up to N ready members of one group under a lease, in one atomic step.
-- KEYS[1] groups   KEYS[2] ready:{group}   KEYS[3] inflight   KEYS[4] leases   KEYS[5] stats
-- KEYS[6] hold     KEYS[7] meta            KEYS[8] high
-- ARGV[1] group id   ARGV[2] max members   ARGV[3] lease_ms   ARGV[4] lease token   ARGV[5] "linger_ms:max_linger_ms"
-- ARGV[6] '1' to claim even while delivery is held (the hold's probe), else '0'
-- ARGV[7] '1' to ignore the linger (claim whatever is ready), else '0'
-- Returns {'hold'} while held; {} when nothing is claimable;
-- else {now_ms, member, due_ms, high(0/1), attempts, member, ...}; due_ms is the original due time
-- (kept in meta across delayed retries), so age and latency count from it.
if ARGV[6] ~= '1' and redis.call('EXISTS', KEYS[6]) == 1 then return {'hold'} end
local group = ARGV[1]
local now = now_ms()
local at = redis.call('ZSCORE', KEYS[1], group)
if not at then return {} end
if ARGV[7] ~= '1' and tonumber(at) > now then return {} end
-- At least one: ZPOPMIN with count 0 pops nothing, which would wrongly unindex a non-empty group.
local popped = redis.call('ZPOPMIN', KEYS[2], math.max(1, tonumber(ARGV[2])))
if #popped == 0 then
  redis.call('ZREM', KEYS[1], group)
  return {}
end
local deadline = now + tonumber(ARGV[3])
local out = {now}
for i = 1, #popped, 2 do
  local member, score = popped[i], tonumber(popped[i + 1])
  local rid = group .. SEP .. member
  local high, due = 0, score
  if score < 0 then high, due = 1, score + HIGH_BAND end
  local attempts = 0
  local meta = redis.call('HGET', KEYS[7], rid)
  if meta then
    -- After a delayed retry the score is the retry time; the original due time is kept in meta.
    local a, d = string.match(meta, '^(%d+)|[^|]*|[^|]*|(%d+)$')
    if a then
      attempts, due = tonumber(a), tonumber(d)
    else
      attempts = tonumber(string.match(meta, '^(%d+)'))
    end
  end
  redis.call('ZADD', KEYS[3], deadline, rid)
  redis.call('HSET', KEYS[4], rid, string.format('%s|%d|%d', ARGV[4], due, high))
  redis.call('HDEL', KEYS[8], rid)
  out[#out + 1] = member
  out[#out + 1] = due
  out[#out + 1] = high
  out[#out + 1] = attempts
end
redis.call('HINCRBY', KEYS[5], 'ready', -(#popped / 2))
reindex(KEYS[1], KEYS[2], group, ARGV[5])
return out
