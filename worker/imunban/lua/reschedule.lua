-- reschedule: move pending requests of one group to a new due time: the console's reschedule. The check
-- "is it still pending?" and the move are this one script, so a cancel or a delivery that lands just
-- before is never undone (the request does not come back) and one that lands after governs as usual.
-- Only a request pending now (ready or scheduled) moves; one in flight, ended or never enqueued is left
-- alone and nothing is stored for it. It keeps its priority; its attempts restart (a new instruction,
-- as an enqueue). With a version, one lower than the version applied to the request (or equal to a
-- cancel's) is ignored, counted as stale_instructions and noted in the request's trace record; one that
-- applies is remembered.
-- KEYS[1] schedidx   KEYS[2] groups   KEYS[3] stats   KEYS[4] high   KEYS[5] meta   KEYS[6] versions
-- KEYS[7] version_ends   KEYS[8] trace (shard prefix)   KEYS[9] wake   KEYS[10] ready:{group}
-- KEYS[11] sched:{group}
-- ARGV[1] "linger_ms:max_linger_ms"   ARGV[2] group id   ARGV[3] the new due time, ms
-- ARGV[4] version, or '' for none   ARGV[5] how long to keep trace records, ms   ARGV[6..] members
-- Returns {rescheduled, stale (ignored: a higher version was applied)}.
local K_SCHEDIDX, K_GROUPS, K_STATS, K_HIGH, K_META = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
refuse_if_full(K_STATS, 'rescheduled')  -- first write: a full Redis refuses here (see _lib.lua)
local K_VERSIONS, K_VERSION_ENDS, K_TRACE, K_WAKE = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_READY, K_SCHED = KEYS[10], KEYS[11]
local group, due, version = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local rescheduled, stale, ready_delta, sched_delta = 0, 0, 0, 0
for i = 6, #ARGV do
  local member = ARGV[i]
  local rid = group .. SEP .. member
  local in_ready = redis.call('ZSCORE', K_READY, member)
  local in_sched = not in_ready and redis.call('ZSCORE', K_SCHED, member)
  if in_ready or in_sched then
    if admit_version(K_VERSIONS, K_VERSION_ENDS, rid, version, false, now) then
      if in_ready then
        redis.call('ZREM', K_READY, member)
        ready_delta = ready_delta - 1
      else
        redis.call('ZREM', K_SCHED, member)
        sched_delta = sched_delta - 1
      end
      redis.call('HDEL', K_META, rid)
      if due <= now then
        redis.call('ZADD', K_READY, ready_score(due, redis.call('HEXISTS', K_HIGH, rid) == 1), member)
        ready_delta = ready_delta + 1
      else
        redis.call('ZADD', K_SCHED, due, member)
        sched_delta = sched_delta + 1
      end
      rescheduled = rescheduled + 1
    else
      stale = stale + 1
      trace_stale(K_TRACE, K_VERSIONS, ARGV[5], group, member, version, now)
    end
  end
end
if rescheduled > 0 then
  reindex(K_GROUPS, K_READY, group, ARGV[1], K_STATS)
  reindex_sched(K_SCHEDIDX, K_SCHED, group)
  if due <= now then wake(K_WAKE) end
  redis.call('HINCRBY', K_STATS, 'rescheduled', rescheduled)
end
if ready_delta ~= 0 then redis.call('HINCRBY', K_STATS, 'ready', ready_delta) end
if sched_delta ~= 0 then redis.call('HINCRBY', K_STATS, 'scheduled', sched_delta) end
if stale > 0 then redis.call('HINCRBY', K_STATS, 'stale_instructions', stale) end
return {rescheduled, stale}
