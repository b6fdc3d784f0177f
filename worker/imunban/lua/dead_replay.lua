-- dead_replay: move dead letters back to the schedule, due at once, with a fresh attempt budget.
-- KEYS[1] dead   KEYS[2] dead_info   KEYS[3] schedidx   KEYS[4] stats   KEYS[5] high   KEYS[6] inflight
-- KEYS[7..6+2n] two keys per group named in ARGV, in the same order: for the group with index gi,
--               KEYS[5+2*gi] = ready:{group} and KEYS[6+2*gi] = sched:{group}
-- ARGV[1] n, the number of groups; ARGV[2..1+n] the group ids matching KEYS[7..]
-- ARGV[2+n..] pairs: group index (1-based), member — the dead letters to replay
-- A replayed request goes into its group's `sched:{group}` due now; the next promote makes it ready.
-- A request that is pending (ready or scheduled) or in flight again keeps its newer instruction:
-- its dead letter is dropped without a second copy.
-- Returns the number replayed.
local n = tonumber(ARGV[1])
local now = now_ms()
local replayed = 0
local sched_dirty = {}
for i = 2 + n, #ARGV, 2 do
  local gi = tonumber(ARGV[i])
  local member = ARGV[i + 1]
  local rid = ARGV[1 + gi] .. SEP .. member
  if redis.call('ZREM', KEYS[1], rid) == 1 then
    local info = redis.call('HGET', KEYS[2], rid)
    redis.call('HDEL', KEYS[2], rid)
    local newer = redis.call('ZSCORE', KEYS[5 + 2 * gi], member)
      or redis.call('ZSCORE', KEYS[6 + 2 * gi], member) or redis.call('ZSCORE', KEYS[6], rid)
    if not newer then
      redis.call('ZADD', KEYS[6 + 2 * gi], now, member)
      if info and cjson.decode(info).high then redis.call('HSET', KEYS[5], rid, 1) end
      replayed = replayed + 1
      sched_dirty[gi] = true
    end
  end
end
for gi, _ in pairs(sched_dirty) do reindex_sched(KEYS[3], KEYS[6 + 2 * gi], ARGV[1 + gi]) end
if replayed > 0 then
  redis.call('HINCRBY', KEYS[4], 'scheduled', replayed)
  redis.call('HINCRBY', KEYS[4], 'replayed', replayed)
end
return replayed
