-- reap: return requests whose lease expired (their worker died or stalled) to the schedule, due at once.
-- KEYS[1] schedidx   KEYS[2] stats   KEYS[3] high   KEYS[4] inflight   KEYS[5] leases
-- KEYS[6..5+2n] per group, in the order of the group ids in ARGV: ready:{group} sched:{group}
-- ARGV[1] n, the number of groups; ARGV[2..1+n] the group ids
-- ARGV[2+n..] pairs: group index (1-based), member — expired leases read by the caller; re-checked here
-- They go into their group's `sched:{group}` (score = original due time, already past) and the next
-- promote makes them ready. A newer pending instruction (ready or scheduled) wins: the reaped copy
-- is dropped.
-- Returns the number of requests reaped.
local K_SCHEDIDX, K_STATS, K_HIGH, K_INFLIGHT, K_LEASES = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
proceed_when_full(K_STATS)  -- first write: delivery drains a full Redis (see _lib.lua)
local n = tonumber(ARGV[1])
local now = now_ms()
local reaped, to_sched = 0, 0
local sched_dirty = {}
for i = 2 + n, #ARGV, 2 do
  local gi = tonumber(ARGV[i])
  local member = ARGV[i + 1]
  local rid = ARGV[1 + gi] .. SEP .. member
  local deadline = redis.call('ZSCORE', K_INFLIGHT, rid)
  if deadline and tonumber(deadline) <= now then
    local _, due, high = parse_lease(redis.call('HGET', K_LEASES, rid), now)
    redis.call('ZREM', K_INFLIGHT, rid)
    redis.call('HDEL', K_LEASES, rid)
    local ready_key, sched_key = group_keys(5, gi)
    local pending = redis.call('ZSCORE', ready_key, member)
      or redis.call('ZSCORE', sched_key, member)
    if not pending then
      redis.call('ZADD', sched_key, due, member)
      if high == '1' then redis.call('HSET', K_HIGH, rid, 1) end
      to_sched = to_sched + 1
      sched_dirty[gi] = true
    end
    reaped = reaped + 1
  end
end
for gi, _ in pairs(sched_dirty) do
  local _, sched_key = group_keys(5, gi)
  reindex_sched(K_SCHEDIDX, sched_key, ARGV[1 + gi])
end
if to_sched > 0 then redis.call('HINCRBY', K_STATS, 'scheduled', to_sched) end
if reaped > 0 then redis.call('HINCRBY', K_STATS, 'reaped', reaped) end
return reaped
