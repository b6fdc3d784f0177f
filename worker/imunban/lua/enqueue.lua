-- enqueue: add or replace pending requests ("latest instruction wins"), deduplicated on (group, member).
-- KEYS[1] schedidx ZSET group -> earliest due ms in its sched:{group}
-- KEYS[2] groups   ZSET group -> claimable-at ms
-- KEYS[3] stats    HASH counters; fields `ready` and `scheduled` are the gauges of pending members
-- KEYS[4] high     HASH request id -> 1 for pending high-priority requests
-- KEYS[5] meta     HASH request id -> attempts|first_failure_ms|last_code (reset: a new instruction)
-- KEYS[6..5+2n] two keys per group named in ARGV, in the same order: for the group with index gi,
--               KEYS[4+2*gi] = ready:{group} and KEYS[5+2*gi] = sched:{group} (member -> due ms)
-- ARGV[1] "linger_ms:max_linger_ms"
-- ARGV[2] n, the number of groups; ARGV[3..2+n] the group ids matching KEYS[6..]
-- ARGV[3+n..] quads: group index (1-based), member, due ms or '' for now, '1' if high else '0'
-- Returns {ready_added, scheduled_added, replaced}
local linger = ARGV[1]
local n = tonumber(ARGV[2])
local now = now_ms()
local dirty, sched_dirty = {}, {}
local ready_added, sched_added, replaced, ready_delta, sched_delta = 0, 0, 0, 0, 0
for i = 3 + n, #ARGV, 4 do
  local gi = tonumber(ARGV[i])
  local group, member = ARGV[2 + gi], ARGV[i + 1]
  local ready_key = KEYS[4 + 2 * gi]
  local sched_key = KEYS[5 + 2 * gi]
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
  redis.call('HDEL', KEYS[5], rid)
  if high then redis.call('HSET', KEYS[4], rid, 1) else redis.call('HDEL', KEYS[4], rid) end
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
for gi, _ in pairs(dirty) do reindex(KEYS[2], KEYS[4 + 2 * gi], ARGV[2 + gi], linger) end
for gi, _ in pairs(sched_dirty) do reindex_sched(KEYS[1], KEYS[5 + 2 * gi], ARGV[2 + gi]) end
redis.call('HINCRBY', KEYS[3], 'enqueued', ready_added + sched_added)
if replaced > 0 then redis.call('HINCRBY', KEYS[3], 'deduplicated', replaced) end
if ready_delta ~= 0 then redis.call('HINCRBY', KEYS[3], 'ready', ready_delta) end
if sched_delta ~= 0 then redis.call('HINCRBY', KEYS[3], 'scheduled', sched_delta) end
return {ready_added, sched_added, replaced}
