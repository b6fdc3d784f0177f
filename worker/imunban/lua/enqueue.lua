-- enqueue: add or replace pending requests ("latest instruction wins"), deduplicated on (group, member).
-- KEYS[1] schedidx ZSET group -> earliest due ms in its sched:{group}
-- KEYS[2] groups   ZSET group -> claimable-at ms
-- KEYS[3] stats    HASH counters; fields `ready` and `scheduled` are the gauges of pending members
-- KEYS[4] high     HASH request id -> 1 for pending high-priority requests
-- KEYS[5] meta     HASH request id -> attempts|first_failure_ms|last_code|due_ms (reset: a new instruction)
-- KEYS[6..5+2n] per group, in the order of the group ids in ARGV: ready:{group} sched:{group}
--               (both ZSET member -> due ms)
-- ARGV[1] "linger_ms:max_linger_ms"
-- ARGV[2] n, the number of groups; ARGV[3..2+n] the group ids
-- ARGV[3+n..] quads: group index (1-based), member, due ms or '' for now, '1' if high else '0'
-- Returns {ready_added, scheduled_added, replaced}
local K_SCHEDIDX, K_GROUPS, K_STATS, K_HIGH, K_META = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local linger = ARGV[1]
local n = tonumber(ARGV[2])
local now = now_ms()
local dirty, sched_dirty = {}, {}
local ready_added, sched_added, replaced, ready_delta, sched_delta = 0, 0, 0, 0, 0
for i = 3 + n, #ARGV, 4 do
  local gi = tonumber(ARGV[i])
  local group, member = ARGV[2 + gi], ARGV[i + 1]
  local ready_key, sched_key = group_keys(5, gi)
  local rid = group .. SEP .. member
  local due = now
  if ARGV[i + 2] ~= '' then due = tonumber(ARGV[i + 2]) end
  local high = ARGV[i + 3] == '1'
  -- A pending request is in at most one of its group's ready and sched sets.
  local was_ready = redis.call('ZREM', ready_key, member) == 1
  if was_ready then
    replaced = replaced + 1
    ready_delta = ready_delta - 1
    dirty[gi] = true
  end
  redis.call('HDEL', K_META, rid)
  if high then redis.call('HSET', K_HIGH, rid, 1) else redis.call('HDEL', K_HIGH, rid) end
  if due <= now then
    if not was_ready and redis.call('ZREM', sched_key, member) == 1 then
      replaced = replaced + 1
      sched_delta = sched_delta - 1
      sched_dirty[gi] = true
    end
    redis.call('ZADD', ready_key, ready_score(due, high), member)
    ready_added = ready_added + 1
    ready_delta = ready_delta + 1
    dirty[gi] = true
  else
    -- ZADD answers 0 when the member was scheduled already: its due time is replaced in place
    -- (this saves a second scan of the group's schedule for a ZREM).
    if redis.call('ZADD', sched_key, due, member) == 1 then
      sched_delta = sched_delta + 1
    elseif not was_ready then
      replaced = replaced + 1
    end
    sched_added = sched_added + 1
    sched_dirty[gi] = true
  end
end
for gi, _ in pairs(dirty) do
  local ready_key = group_keys(5, gi)
  reindex(K_GROUPS, ready_key, ARGV[2 + gi], linger)
end
for gi, _ in pairs(sched_dirty) do
  local _, sched_key = group_keys(5, gi)
  reindex_sched(K_SCHEDIDX, sched_key, ARGV[2 + gi])
end
redis.call('HINCRBY', K_STATS, 'enqueued', ready_added + sched_added)
if replaced > 0 then redis.call('HINCRBY', K_STATS, 'deduplicated', replaced) end
if ready_delta ~= 0 then redis.call('HINCRBY', K_STATS, 'ready', ready_delta) end
if sched_delta ~= 0 then redis.call('HINCRBY', K_STATS, 'scheduled', sched_delta) end
return {ready_added, sched_added, replaced}
