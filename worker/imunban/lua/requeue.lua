-- requeue: give leased requests back for another try, after `delay_ms` (0 = ready again at once).
-- KEYS[1] schedidx   KEYS[2] groups   KEYS[3] stats   KEYS[4] high   KEYS[5] meta   KEYS[6] inflight
-- KEYS[7] leases     KEYS[8] replies   KEYS[9] reply_expiry   KEYS[10] wake
-- KEYS[11] ready:{group}   KEYS[12] sched:{group}
-- ARGV[1] lease token   ARGV[2] group id   ARGV[3] delay_ms   ARGV[4] ErrorCode of this failure
-- ARGV[5] '1' if this failure counts as an attempt, else '0' (hold probes and rate-limit answers do not)
-- ARGV[6] linger_ms   ARGV[7] call id (fresh per call; the same in a replay)
-- ARGV[8] how long to keep the reply, ms   ARGV[9] API calls to count (the call this batch just had, if any)
-- ARGV[10..] members
-- A request that was re-enqueued while in flight is already pending again: that newer copy wins. A
-- copy whose lease was revoked (cancel, newer instruction) or reaped is stale: never given back.
-- A replayed call (same call id) returns its first reply and changes nothing.
-- meta becomes "attempts|first_failure_ms|last_code|original_due_ms" (see claim.lua).
-- Returns {requeued, stale}
local K_SCHEDIDX, K_GROUPS, K_STATS, K_HIGH, K_META = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_INFLIGHT, K_LEASES, K_REPLIES, K_REPLY_EXPIRY = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_WAKE, K_READY, K_SCHED = KEYS[10], KEYS[11], KEYS[12]
proceed_when_full(K_STATS)  -- first write: delivery drains a full Redis (see _lib.lua)
local replayed = reply_get(K_REPLIES, ARGV[7])
if replayed then return replayed end
local token, group = ARGV[1], ARGV[2]
local delay, counts = tonumber(ARGV[3]), ARGV[5] == '1'
local now = now_ms()
local requeued, stale, to_ready, to_sched = 0, 0, 0, 0
for i = 10, #ARGV do
  local member = ARGV[i]
  local rid = group .. SEP .. member
  local ltoken, due, high = parse_lease(redis.call('HGET', K_LEASES, rid), now)
  if ltoken == token then
    redis.call('ZREM', K_INFLIGHT, rid)
    redis.call('HDEL', K_LEASES, rid)
    local pending = redis.call('ZSCORE', K_READY, member) or redis.call('ZSCORE', K_SCHED, member)
    if not pending then
      if counts or delay > 0 then
        -- meta keeps the original due time: a delayed retry is scheduled at its retry time, but
        -- its age (the give-up rule) and its due -> delivered latency count from the original.
        local attempts, first = parse_meta(redis.call('HGET', K_META, rid))
        first = first or now
        if counts then attempts = attempts + 1 end
        redis.call('HSET', K_META, rid, string.format('%d|%d|%s|%d', attempts, first, ARGV[4], due))
      end
      if high == '1' then redis.call('HSET', K_HIGH, rid, 1) end
      if delay <= 0 then
        redis.call('ZADD', K_READY, ready_score(tonumber(due), high == '1'), member)
        to_ready = to_ready + 1
      else
        redis.call('ZADD', K_SCHED, now + delay, member)
        to_sched = to_sched + 1
      end
      requeued = requeued + 1
    end
  else
    stale = stale + 1
  end
end
if to_ready > 0 then
  redis.call('HINCRBY', K_STATS, 'ready', to_ready)
  reindex(K_GROUPS, K_READY, group, ARGV[6], K_STATS)
  -- Ready again at once: a pump waiting on its timer dispatches it now.
  wake(K_WAKE)
end
-- The per-call counter rides here instead of costing a round trip of its own (delivery.py).
if tonumber(ARGV[9]) > 0 then redis.call('HINCRBY', K_STATS, 'calls', ARGV[9]) end
if to_sched > 0 then
  redis.call('HINCRBY', K_STATS, 'scheduled', to_sched)
  reindex_sched(K_SCHEDIDX, K_SCHED, group)
end
if requeued > 0 then redis.call('HINCRBY', K_STATS, 'retried', requeued) end
if stale > 0 then redis.call('HINCRBY', K_STATS, 'stale_requeues', stale) end
reply_put(K_REPLIES, K_REPLY_EXPIRY, ARGV[7], {requeued, stale}, ARGV[8], now)
return {requeued, stale}
