-- claim: take up to N ready members of one group under a lease, in one atomic step.
-- A replayed claim (the same token) returns the batch the first one leased and leases nothing more.
-- Each claim that leases something records its time (stats last_claim_ms): a worker alive but not
-- claiming (its consumer stuck, the failover trap) shows as stalled (imunban.state).
-- KEYS[1] groups     KEYS[2] stats   KEYS[3] high   KEYS[4] meta   KEYS[5] inflight   KEYS[6] leases
-- KEYS[7] hold       KEYS[8] pause   KEYS[9] replies   KEYS[10] reply_expiry   KEYS[11] ready:{group}
-- ARGV[1] group id   ARGV[2] max members   ARGV[3] lease_ms   ARGV[4] lease token   ARGV[5] linger_ms
-- ARGV[6] '1' to claim even while delivery is held (the hold's probe), else '0'; a pause stops probes too
-- ARGV[7] '1' to ignore the linger (claim whatever is ready), else '0'
-- ARGV[8] how long to keep the reply for a replay, ms (at most the lease: then the batch is reaped)
-- ARGV[9] '1' to answer with the group a delivery run should serve instead (a run's next batch, with
--         no round trip of its own to read the index): the head of the groups index when it holds a
--         high-priority member (it goes first), or the head when it is claimable and this group has
--         nothing claimable; else '0' (claim this group or nothing)
-- ARGV[10] spread: with ARGV[9], how many of the oldest claimable groups to choose among (1: the head)
-- ARGV[11] pick: which of them, any non-negative integer, taken modulo how many there are (a caller's
--          random draw: delivery runs that move on at once then land on different groups instead of
--          all piling onto the head, where all but one find it emptied and claim again)
-- Returns {'hold'} while held or paused; {'next', group} for ARGV[9] (nothing leased); {} when nothing is claimable;
-- else {now_ms, member, due_ms, high(0/1), attempts, member, ...}; due_ms is the original due time
-- (kept in meta across delayed retries), so age and latency count from it.
local K_GROUPS, K_STATS, K_HIGH, K_META = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_INFLIGHT, K_LEASES, K_HOLD, K_PAUSE = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_REPLIES, K_REPLY_EXPIRY, K_READY = KEYS[9], KEYS[10], KEYS[11]
proceed_when_full(K_STATS)  -- first write: delivery drains a full Redis (see _lib.lua)
local replayed = reply_get(K_REPLIES, ARGV[4])
if replayed then return replayed end
-- An operator's pause is a hold no probe lifts.
if redis.call('EXISTS', K_PAUSE) == 1 then return {'hold'} end
if ARGV[6] ~= '1' and redis.call('EXISTS', K_HOLD) == 1 then return {'hold'} end
local group = ARGV[1]
local now = now_ms()
-- The run's alternative (ARGV[9]): nothing, or {'next', head} when this group has nothing to claim.
local instead = {}
if ARGV[9] == '1' then
  local heads = redis.call('ZRANGE', K_GROUPS, 0, math.max(1, tonumber(ARGV[10] or '1')) - 1, 'WITHSCORES')
  if #heads > 0 and heads[1] ~= group and tonumber(heads[2]) < 0 then
    return {'next', heads[1]}  -- a high-priority member waits there: it goes first
  end
  local claimable = {}
  for i = 1, #heads, 2 do
    if heads[i] ~= group and tonumber(heads[i + 1]) <= now then claimable[#claimable + 1] = heads[i] end
  end
  if #claimable > 0 then instead = {'next', claimable[(tonumber(ARGV[11] or '0') % #claimable) + 1]} end
end
local at = redis.call('ZSCORE', K_GROUPS, group)
if not at then return instead end
if ARGV[7] ~= '1' and tonumber(at) > now then return instead end
-- At least one: ZPOPMIN with count 0 pops nothing, which would wrongly unindex a non-empty group.
local popped = redis.call('ZPOPMIN', K_READY, math.max(1, tonumber(ARGV[2])))
if #popped == 0 then
  redis.call('ZREM', K_GROUPS, group)
  return instead
end
local deadline = now + tonumber(ARGV[3])
local out = {now}
for i = 1, #popped, 2 do
  local member = popped[i]
  local rid = group .. SEP .. member
  local due, is_high = decode_ready_score(tonumber(popped[i + 1]))
  local high = is_high and 1 or 0
  -- After a delayed retry the score is the retry time; the original due time is kept in meta.
  local attempts, _, _, meta_due = parse_meta(redis.call('HGET', K_META, rid))
  due = meta_due or due
  redis.call('ZADD', K_INFLIGHT, deadline, rid)
  redis.call('HSET', K_LEASES, rid, string.format('%s|%d|%d', ARGV[4], due, high))
  redis.call('HDEL', K_HIGH, rid)
  out[#out + 1] = member
  out[#out + 1] = due
  out[#out + 1] = high
  out[#out + 1] = attempts
end
redis.call('HINCRBY', K_STATS, 'ready', -(#popped / 2))
redis.call('HSET', K_STATS, 'last_claim_ms', now)
reindex(K_GROUPS, K_READY, group, ARGV[5], K_STATS)
reply_put(K_REPLIES, K_REPLY_EXPIRY, ARGV[4], out, ARGV[8], now)
return out
