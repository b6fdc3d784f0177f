-- cancel: remove pending requests of one group (ready or scheduled). In-flight ones are not touched.
-- KEYS[1] schedidx   KEYS[2] groups   KEYS[3] stats   KEYS[4] high   KEYS[5] meta   KEYS[6] ready:{group}
-- KEYS[7] sched:{group}
-- ARGV[1] "linger_ms:max_linger_ms"   ARGV[2] group id   ARGV[3..] members
-- Returns the number of pending requests removed.
local group = ARGV[2]
local removed, ready_removed, sched_removed = 0, 0, 0
for i = 3, #ARGV do
  local rid = group .. SEP .. ARGV[i]
  local in_ready = redis.call('ZREM', KEYS[6], ARGV[i]) == 1
  -- Both sets are checked: a pending request must never survive a cancel in either of them.
  local in_sched = redis.call('ZREM', KEYS[7], ARGV[i]) == 1
  if in_ready then ready_removed = ready_removed + 1 end
  if in_sched then sched_removed = sched_removed + 1 end
  if in_ready or in_sched then
    removed = removed + 1
    -- Only a pending request's flags go: an in-flight one keeps its attempts (cancel is a no-op on it).
    redis.call('HDEL', KEYS[4], rid)
    redis.call('HDEL', KEYS[5], rid)
  end
end
if ready_removed > 0 then
  redis.call('HINCRBY', KEYS[3], 'ready', -ready_removed)
  reindex(KEYS[2], KEYS[6], group, ARGV[1])
end
if sched_removed > 0 then
  redis.call('HINCRBY', KEYS[3], 'scheduled', -sched_removed)
  reindex_sched(KEYS[1], KEYS[7], group)
end
if removed > 0 then redis.call('HINCRBY', KEYS[3], 'cancelled', removed) end
return removed
