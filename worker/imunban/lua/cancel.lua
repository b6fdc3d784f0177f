-- cancel: remove pending requests of one group (ready or scheduled). In-flight ones are not touched.
-- KEYS[1] schedidx   KEYS[2] groups   KEYS[3] stats   KEYS[4] high   KEYS[5] meta   KEYS[6] ready:{group}
-- KEYS[7] sched:{group}
-- ARGV[1] "linger_ms:max_linger_ms"   ARGV[2] group id   ARGV[3..] members
-- Returns the number of pending requests removed.
local K_SCHEDIDX, K_GROUPS, K_STATS, K_HIGH, K_META = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_READY, K_SCHED = KEYS[6], KEYS[7]
local group = ARGV[2]
local removed, ready_removed, sched_removed = 0, 0, 0
for i = 3, #ARGV do
  local rid = group .. SEP .. ARGV[i]
  local in_ready = redis.call('ZREM', K_READY, ARGV[i]) == 1
  -- Both sets are checked: a pending request must never survive a cancel in either of them.
  local in_sched = redis.call('ZREM', K_SCHED, ARGV[i]) == 1
  if in_ready then ready_removed = ready_removed + 1 end
  if in_sched then sched_removed = sched_removed + 1 end
  if in_ready or in_sched then
    removed = removed + 1
    -- Only a pending request's flags go: an in-flight one keeps its attempts (cancel is a no-op on it).
    redis.call('HDEL', K_HIGH, rid)
    redis.call('HDEL', K_META, rid)
  end
end
if ready_removed > 0 then
  redis.call('HINCRBY', K_STATS, 'ready', -ready_removed)
  reindex(K_GROUPS, K_READY, group, ARGV[1])
end
if sched_removed > 0 then
  redis.call('HINCRBY', K_STATS, 'scheduled', -sched_removed)
  reindex_sched(K_SCHEDIDX, K_SCHED, group)
end
if removed > 0 then redis.call('HINCRBY', K_STATS, 'cancelled', removed) end
return removed
