-- cancel: remove pending requests of one group (ready or scheduled). In-flight ones are not touched.
-- KEYS[1] sched   KEYS[2] groups   KEYS[3] stats   KEYS[4] high   KEYS[5] meta   KEYS[6] ready:{group}
-- ARGV[1] linger_ms   ARGV[2] group id   ARGV[3..] members
-- Returns the number of pending requests removed.
local group = ARGV[2]
local removed, ready_removed = 0, 0
for i = 3, #ARGV do
  local rid = group .. SEP .. ARGV[i]
  if redis.call('ZREM', KEYS[6], ARGV[i]) == 1 then
    removed = removed + 1
    ready_removed = ready_removed + 1
  elseif redis.call('ZREM', KEYS[1], rid) == 1 then
    removed = removed + 1
  end
  redis.call('HDEL', KEYS[4], rid)
  redis.call('HDEL', KEYS[5], rid)
end
if ready_removed > 0 then
  redis.call('HINCRBY', KEYS[3], 'ready', -ready_removed)
  reindex(KEYS[2], KEYS[6], group, tonumber(ARGV[1]))
end
if removed > 0 then redis.call('HINCRBY', KEYS[3], 'cancelled', removed) end
return removed
