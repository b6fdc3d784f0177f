-- cancel: end requests of one group: remove pending copies (ready or scheduled), revoke in-flight ones
-- and end their dead letters.
-- An in-flight copy is revoked by removing its lease (the contract: a copy is live iff `leases` holds
-- its token), so the pre-call lease check skips it and requeue, reap and ack treat it as stale.
-- A dead letter of the request is removed with its info: a cancel after the request died sticks, and
-- no later dead-letter replay can bring it back (docs/durability.md, "Nothing ended comes back").
-- With a version, a cancel lower than the version applied to a request is ignored (stale_instructions).
-- A request cancelled here gets the trace record `cancelled`; an ignored cancel is noted in its record.
-- KEYS[1] schedidx   KEYS[2] groups   KEYS[3] stats   KEYS[4] high   KEYS[5] meta   KEYS[6] inflight
-- KEYS[7] leases     KEYS[8] versions   KEYS[9] version_ends   KEYS[10] trace (shard prefix)   KEYS[11] dead
-- KEYS[12] dead_info   KEYS[13] ready:{group}   KEYS[14] sched:{group}
-- ARGV[1] linger_ms   ARGV[2] group id   ARGV[3] version, or '' for none
-- ARGV[4] how long to keep trace records, ms   ARGV[5..] members
-- Returns the number of requests cancelled (pending removed, in-flight revoked or dead letter ended).
local K_SCHEDIDX, K_GROUPS, K_STATS, K_HIGH, K_META = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
refuse_if_full(K_STATS, 'cancelled')  -- first write: a full Redis refuses here (see _lib.lua)
local K_INFLIGHT, K_LEASES, K_VERSIONS, K_VERSION_ENDS, K_TRACE = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local K_DEAD, K_DEAD_INFO = KEYS[11], KEYS[12]
local K_READY, K_SCHED = KEYS[13], KEYS[14]
local group, version, trace_ttl = ARGV[2], ARGV[3], ARGV[4]
local now = now_ms()
local removed, ready_removed, sched_removed, stale = 0, 0, 0, 0
-- Checked once per call: a cancel into a store without dead letters skips the per-member lookups.
local any_dead = redis.call('ZCARD', K_DEAD) > 0
for i = 5, #ARGV do
  local rid = group .. SEP .. ARGV[i]
  if admit_version(K_VERSIONS, K_VERSION_ENDS, rid, version, true, now) then
    local in_ready = redis.call('ZREM', K_READY, ARGV[i]) == 1
    -- Both sets are checked: a pending request must never survive a cancel in either of them.
    local in_sched = redis.call('ZREM', K_SCHED, ARGV[i]) == 1
    if in_ready then ready_removed = ready_removed + 1 end
    if in_sched then sched_removed = sched_removed + 1 end
    -- The in-flight copy is revoked: not sent if not sent yet, never given back by requeue or reap.
    local in_flight = redis.call('HDEL', K_LEASES, rid) == 1
    if in_flight then redis.call('ZREM', K_INFLIGHT, rid) end
    local was_dead = any_dead and redis.call('ZREM', K_DEAD, rid) == 1
    if was_dead then redis.call('HDEL', K_DEAD_INFO, rid) end
    if in_ready or in_sched or in_flight or was_dead then
      removed = removed + 1
      redis.call('HDEL', K_HIGH, rid)
      -- The attempts it had (failed calls before the cancel) go into its record.
      local attempts = parse_meta(redis.call('HGET', K_META, rid))
      redis.call('HDEL', K_META, rid)
      trace_end(K_TRACE, trace_ttl, group, ARGV[i], 'cancelled', now, attempts, '', version, '')
    end
  else
    stale = stale + 1
    trace_stale(K_TRACE, K_VERSIONS, trace_ttl, group, ARGV[i], version, now)
  end
end
if ready_removed > 0 then
  redis.call('HINCRBY', K_STATS, 'ready', -ready_removed)
  reindex(K_GROUPS, K_READY, group, ARGV[1], K_STATS)
end
if sched_removed > 0 then
  redis.call('HINCRBY', K_STATS, 'scheduled', -sched_removed)
  reindex_sched(K_SCHEDIDX, K_SCHED, group)
end
if removed > 0 then redis.call('HINCRBY', K_STATS, 'cancelled', removed) end
if stale > 0 then redis.call('HINCRBY', K_STATS, 'stale_instructions', stale) end
return removed
