-- enqueue: add or replace pending requests ("latest instruction wins"), deduplicated on (group, member).
-- The newer instruction also governs a copy in flight: its lease is removed (revoked), so it is not
-- sent if not sent yet and never comes back. With a version, an instruction lower than the version
-- applied to a request (see admit_version in _lib.lua) is ignored, counted (stale_instructions) and noted
-- in the request's trace record (trace_stale).
-- KEYS[1] schedidx ZSET group -> earliest due ms in its sched:{group}
-- KEYS[2] groups   ZSET group -> claimable-at ms
-- KEYS[3] stats    HASH counters; fields `ready` and `scheduled` are the gauges of pending members
-- KEYS[4] high     HASH request id -> 1 for pending high-priority requests
-- KEYS[5] meta     HASH request id -> attempts|first_failure_ms|last_code|due_ms (reset: a new instruction)
-- KEYS[6] inflight ZSET request id -> lease deadline ms   KEYS[7] leases HASH request id -> lease record
-- KEYS[8] versions HASH request id -> version applied   KEYS[9] version_ends ZSET request id -> ms ended
-- KEYS[10] trace    prefix of the trace shards (keys.py Keys.trace)
-- KEYS[11] wake     LIST tokens that wake a waiting pump (something became due now)
-- KEYS[12..11+2n] per group, in the order of the group ids in ARGV: ready:{group} sched:{group}
--               (both ZSET member -> due ms)
-- ARGV[1] linger_ms
-- ARGV[2] '1' when the requests move from a message held in this Redis (a Celery message on a broker
--         that shares it): a full Redis lets them through (see refuse_if_full in _lib.lua); else '0'
-- ARGV[3] how long to keep trace records, ms
-- ARGV[4] n, the number of groups; ARGV[5..4+n] the group ids
-- ARGV[5+n..] 5-tuples: group index (1-based), member, due ms or '' for now, '1' if high else '0',
--             version or '' for none
-- Returns {ready_added, scheduled_added, replaced, stale (ignored: a higher version was applied)}
local K_SCHEDIDX, K_GROUPS, K_STATS, K_HIGH, K_META = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
refuse_if_full(K_STATS, 'enqueued', ARGV[2] == '1')  -- first write: a full Redis refuses here (see _lib.lua)
local K_INFLIGHT, K_LEASES, K_VERSIONS, K_VERSION_ENDS = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_TRACE, K_WAKE = KEYS[10], KEYS[11]
local linger, trace_ttl = ARGV[1], ARGV[3]
local n = tonumber(ARGV[4])
local now = now_ms()
local dirty, sched_dirty = {}, {}
local ready_added, sched_added, replaced, ready_delta, sched_delta, stale = 0, 0, 0, 0, 0, 0
-- Checked once per call: a bulk import into an idle store skips the per-member lease lookups.
local any_in_flight = redis.call('ZCARD', K_INFLIGHT) > 0
for i = 5 + n, #ARGV, 5 do
  local gi = tonumber(ARGV[i])
  local group, member = ARGV[4 + gi], ARGV[i + 1]
  local ready_key, sched_key = group_keys(11, gi)
  local rid = group .. SEP .. member
  local due = now
  if ARGV[i + 2] ~= '' then due = tonumber(ARGV[i + 2]) end
  local high = ARGV[i + 3] == '1'
  if not admit_version(K_VERSIONS, K_VERSION_ENDS, rid, ARGV[i + 4], false, now) then
    stale = stale + 1
    trace_stale(K_TRACE, K_VERSIONS, trace_ttl, group, member, ARGV[i + 4], now)
  else
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
    -- The copy in flight is revoked (its worker's pre-call lease check then skips it).
    if any_in_flight and redis.call('HDEL', K_LEASES, rid) == 1 then redis.call('ZREM', K_INFLIGHT, rid) end
  end
end
for gi, _ in pairs(dirty) do
  local ready_key = group_keys(11, gi)
  reindex(K_GROUPS, ready_key, ARGV[4 + gi], linger, K_STATS)
end
for gi, _ in pairs(sched_dirty) do
  local _, sched_key = group_keys(11, gi)
  reindex_sched(K_SCHEDIDX, sched_key, ARGV[4 + gi])
end
-- A request due now should not wait for the pump's next timer: wake one (pump.py).
if ready_added > 0 then wake(K_WAKE) end
redis.call('HINCRBY', K_STATS, 'enqueued', ready_added + sched_added)
if replaced > 0 then redis.call('HINCRBY', K_STATS, 'deduplicated', replaced) end
if ready_delta ~= 0 then redis.call('HINCRBY', K_STATS, 'ready', ready_delta) end
if sched_delta ~= 0 then redis.call('HINCRBY', K_STATS, 'scheduled', sched_delta) end
if stale > 0 then redis.call('HINCRBY', K_STATS, 'stale_instructions', stale) end
return {ready_added, sched_added, replaced, stale}
