-- reap: return requests whose lease expired (their worker died or stalled) to the schedule, due at once.
-- KEYS[1] inflight   KEYS[2] leases   KEYS[3] schedidx   KEYS[4] stats   KEYS[5] high
-- KEYS[6..5+2n] two keys per group named in ARGV, in the same order: for the group with index gi,
--               KEYS[4+2*gi] = ready:{group} and KEYS[5+2*gi] = sched:{group}
-- ARGV[1] n, the number of groups; ARGV[2..1+n] the group ids matching KEYS[6..]
-- ARGV[2+n..] pairs: group index (1-based), member — expired leases read by the caller; re-checked here
-- They go into their group's `sched:{group}` (score = original due time, already past) and the next
-- promote makes them ready. A newer pending instruction (ready or scheduled) wins: the reaped copy
-- is dropped.
-- Returns the number of requests reaped.
local n = tonumber(ARGV[1])
local now = now_ms()
local reaped, to_sched = 0, 0
local sched_dirty = {}
for i = 2 + n, #ARGV, 2 do
  local gi = tonumber(ARGV[i])
  local member = ARGV[i + 1]
  local rid = ARGV[1 + gi] .. SEP .. member
  local deadline = redis.call('ZSCORE', KEYS[1], rid)
  if deadline and tonumber(deadline) <= now then
    local _, due, high = parse_lease(redis.call('HGET', KEYS[2], rid), now)
    redis.call('ZREM', KEYS[1], rid)
    redis.call('HDEL', KEYS[2], rid)
    local pending = redis.call('ZSCORE', KEYS[4 + 2 * gi], member)
      or redis.call('ZSCORE', KEYS[5 + 2 * gi], member)
    if not pending then
      redis.call('ZADD', KEYS[5 + 2 * gi], due, member)
      if high == '1' then redis.call('HSET', KEYS[5], rid, 1) end
      to_sched = to_sched + 1
      sched_dirty[gi] = true
    end
    reaped = reaped + 1
  end
end
for gi, _ in pairs(sched_dirty) do reindex_sched(KEYS[3], KEYS[5 + 2 * gi], ARGV[1 + gi]) end
if to_sched > 0 then redis.call('HINCRBY', KEYS[4], 'scheduled', to_sched) end
if reaped > 0 then redis.call('HINCRBY', KEYS[4], 'reaped', reaped) end
return reaped
