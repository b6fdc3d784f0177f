-- dead_replay: move dead letters back to the schedule, due at once, with a fresh attempt budget.
-- KEYS[1] schedidx   KEYS[2] stats   KEYS[3] high   KEYS[4] inflight   KEYS[5] versions   KEYS[6] version_ends
-- KEYS[7] dead   KEYS[8] dead_info
-- KEYS[9..8+2n] per group, in the order of the group ids in ARGV: ready:{group} sched:{group}
-- ARGV[1] n, the number of groups; ARGV[2..1+n] the group ids
-- ARGV[2+n..] pairs: group index (1-based), member — the dead letters to replay
-- A replayed request goes into its group's `sched:{group}` due now; the next promote makes it ready.
-- Nothing ended comes back. A dead letter is dropped without a copy, and counted as skipped, when
--  * the request is pending (ready or scheduled) or in flight again: its newer instruction stands;
--  * a later instruction ended it: `versions` holds a higher version than the one recorded in the
--    dead letter when it died (ack.lua), or the same one applied by a cancel. A dead letter that
--    recorded no version skips when any version was applied since; one written before versions were
--    recorded in dead letters skips when a cancel's version is there. (An unversioned cancel removes
--    the dead letter itself: cancel.lua.)
-- A replayed request lives again: its version (if any) is remembered until it ends again.
-- Returns {replayed, skipped as pending or in flight again, skipped as ended by a later instruction}.
local K_SCHEDIDX, K_STATS, K_HIGH = KEYS[1], KEYS[2], KEYS[3]
refuse_if_full(K_STATS, 'replayed')  -- first write: a full Redis refuses here (see _lib.lua)
local K_INFLIGHT, K_VERSIONS, K_VERSION_ENDS, K_DEAD, K_DEAD_INFO = KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local n = tonumber(ARGV[1])
local now = now_ms()
local replayed, skipped_pending, skipped_ended = 0, 0, 0
local sched_dirty = {}

-- Whether a later instruction ended the request since it died (see the header).
local function ended_since(rid, info)
  local stored = redis.call('HGET', K_VERSIONS, rid)
  if not stored then return false end
  local applied, by_cancel = string.match(stored, '^(%d+)(c?)$')
  local at_death = info.version
  if at_death == nil then return by_cancel == 'c' end
  if at_death == '' then return true end
  local cmp = compare_versions(applied, at_death)
  return cmp > 0 or (cmp == 0 and by_cancel == 'c')
end

for i = 2 + n, #ARGV, 2 do
  local gi = tonumber(ARGV[i])
  local member = ARGV[i + 1]
  local rid = ARGV[1 + gi] .. SEP .. member
  if redis.call('ZREM', K_DEAD, rid) == 1 then
    local raw = redis.call('HGET', K_DEAD_INFO, rid)
    local info = raw and cjson.decode(raw) or {}
    redis.call('HDEL', K_DEAD_INFO, rid)
    local ready_key, sched_key = group_keys(8, gi)
    local newer = redis.call('ZSCORE', ready_key, member)
      or redis.call('ZSCORE', sched_key, member) or redis.call('ZSCORE', K_INFLIGHT, rid)
    if newer then
      skipped_pending = skipped_pending + 1
    elseif ended_since(rid, info) then
      skipped_ended = skipped_ended + 1
    else
      redis.call('ZADD', sched_key, now, member)
      redis.call('ZREM', K_VERSION_ENDS, rid)
      if info.high then redis.call('HSET', K_HIGH, rid, 1) end
      replayed = replayed + 1
      sched_dirty[gi] = true
    end
  end
end
for gi, _ in pairs(sched_dirty) do
  local _, sched_key = group_keys(8, gi)
  reindex_sched(K_SCHEDIDX, sched_key, ARGV[1 + gi])
end
if replayed > 0 then
  redis.call('HINCRBY', K_STATS, 'scheduled', replayed)
  redis.call('HINCRBY', K_STATS, 'replayed', replayed)
end
if skipped_pending + skipped_ended > 0 then
  redis.call('HINCRBY', K_STATS, 'replay_skipped', skipped_pending + skipped_ended)
end
return {replayed, skipped_pending, skipped_ended}
