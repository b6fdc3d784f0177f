-- requeue: give leased requests back for another try, after `delay_ms` (0 = ready again at once).
-- KEYS[1] inflight   KEYS[2] leases   KEYS[3] meta   KEYS[4] schedidx   KEYS[5] stats   KEYS[6] high
-- KEYS[7] groups     KEYS[8] ready:{group}   KEYS[9] sched:{group}
-- ARGV[1] lease token   ARGV[2] group id   ARGV[3] delay_ms   ARGV[4] ErrorCode of this failure
-- ARGV[5] '1' if this failure counts as an attempt, else '0' (hold probes and rate-limit answers do not)
-- ARGV[6] "linger_ms:max_linger_ms"   ARGV[7..] members
-- A request that was re-enqueued while in flight is already pending again: that newer copy wins.
-- meta becomes "attempts|first_failure_ms|last_code|original_due_ms" (see claim.lua).
-- Returns {requeued, stale}
local token, group = ARGV[1], ARGV[2]
local delay, counts = tonumber(ARGV[3]), ARGV[5] == '1'
local now = now_ms()
local requeued, stale, to_ready, to_sched = 0, 0, 0, 0
for i = 7, #ARGV do
  local member = ARGV[i]
  local rid = group .. SEP .. member
  local ltoken, due, high = parse_lease(redis.call('HGET', KEYS[2], rid), now)
  if ltoken == token then
    redis.call('ZREM', KEYS[1], rid)
    redis.call('HDEL', KEYS[2], rid)
    local pending = redis.call('ZSCORE', KEYS[8], member) or redis.call('ZSCORE', KEYS[9], member)
    if not pending then
      if counts or delay > 0 then
        -- meta keeps the original due time: a delayed retry is scheduled at its retry time, but
        -- its age (the give-up rule) and its due -> delivered latency count from the original.
        local attempts, first = 0, now
        local meta = redis.call('HGET', KEYS[3], rid)
        if meta then
          local a, f = string.match(meta, '^(%d+)|(%d+)')
          attempts, first = tonumber(a), tonumber(f)
        end
        if counts then attempts = attempts + 1 end
        redis.call('HSET', KEYS[3], rid, string.format('%d|%d|%s|%d', attempts, first, ARGV[4], due))
      end
      if high == '1' then redis.call('HSET', KEYS[6], rid, 1) end
      if delay <= 0 then
        redis.call('ZADD', KEYS[8], ready_score(tonumber(due), high == '1'), member)
        to_ready = to_ready + 1
      else
        redis.call('ZADD', KEYS[9], now + delay, member)
        to_sched = to_sched + 1
      end
      requeued = requeued + 1
    end
  else
    stale = stale + 1
  end
end
if to_ready > 0 then
  redis.call('HINCRBY', KEYS[5], 'ready', to_ready)
  reindex(KEYS[7], KEYS[8], group, ARGV[6])
end
if to_sched > 0 then
  redis.call('HINCRBY', KEYS[5], 'scheduled', to_sched)
  reindex_sched(KEYS[4], KEYS[9], group)
end
if requeued > 0 then redis.call('HINCRBY', KEYS[5], 'retried', requeued) end
if stale > 0 then redis.call('HINCRBY', KEYS[5], 'stale_acks', stale) end
return {requeued, stale}
