-- dead_replay: move dead letters back to the schedule, due at once, with a fresh attempt budget.
-- KEYS[1] schedidx   KEYS[2] stats   KEYS[3] high   KEYS[4] inflight   KEYS[5] version_ends   KEYS[6] dead
-- KEYS[7] dead_info
-- KEYS[8..7+2n] per group, in the order of the group ids in ARGV: ready:{group} sched:{group}
-- ARGV[1] n, the number of groups; ARGV[2..1+n] the group ids
-- ARGV[2+n..] pairs: group index (1-based), member — the dead letters to replay
-- A replayed request goes into its group's `sched:{group}` due now; the next promote makes it ready.
-- A request that is pending (ready or scheduled) or in flight again keeps its newer instruction:
-- its dead letter is dropped without a second copy. A replayed request lives again: its version (if
-- any) is remembered until it ends again.
-- Returns the number replayed.
local K_SCHEDIDX, K_STATS, K_HIGH = KEYS[1], KEYS[2], KEYS[3]
refuse_if_full(K_STATS, 'replayed')  -- first write: a full Redis refuses here (see _lib.lua)
local K_INFLIGHT, K_VERSION_ENDS, K_DEAD, K_DEAD_INFO = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local n = tonumber(ARGV[1])
local now = now_ms()
local replayed = 0
local sched_dirty = {}
for i = 2 + n, #ARGV, 2 do
  local gi = tonumber(ARGV[i])
  local member = ARGV[i + 1]
  local rid = ARGV[1 + gi] .. SEP .. member
  if redis.call('ZREM', K_DEAD, rid) == 1 then
    local info = redis.call('HGET', K_DEAD_INFO, rid)
    redis.call('HDEL', K_DEAD_INFO, rid)
    local ready_key, sched_key = group_keys(7, gi)
    local newer = redis.call('ZSCORE', ready_key, member)
      or redis.call('ZSCORE', sched_key, member) or redis.call('ZSCORE', K_INFLIGHT, rid)
    if not newer then
      redis.call('ZADD', sched_key, now, member)
      redis.call('ZREM', K_VERSION_ENDS, rid)
      if info and cjson.decode(info).high then redis.call('HSET', K_HIGH, rid, 1) end
      replayed = replayed + 1
      sched_dirty[gi] = true
    end
  end
end
for gi, _ in pairs(sched_dirty) do
  local _, sched_key = group_keys(7, gi)
  reindex_sched(K_SCHEDIDX, sched_key, ARGV[1 + gi])
end
if replayed > 0 then
  redis.call('HINCRBY', K_STATS, 'scheduled', replayed)
  redis.call('HINCRBY', K_STATS, 'replayed', replayed)
end
return replayed
