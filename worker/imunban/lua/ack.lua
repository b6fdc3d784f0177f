-- ack: end leased requests with one outcome, after the API answered. Stale leases are skipped: a copy
-- whose lease expired (reaped) or was revoked (a cancel or newer instruction) records nothing and
-- counts as `stale_acks`. A replayed call (same call id) returns its first reply and changes nothing.
-- Each acked request's trace record says its outcome (trace_end in _lib.lua), unless Redis is full (has_room).
-- KEYS[1] stats   KEYS[2] meta   KEYS[3] inflight   KEYS[4] leases   KEYS[5] versions   KEYS[6] version_ends
-- KEYS[7] outcomes (stream)   KEYS[8] trace (shard prefix)   KEYS[9] dead   KEYS[10] dead_info   KEYS[11] ok_groups
-- KEYS[12] replies   KEYS[13] reply_expiry
-- ARGV[1] lease token   ARGV[2] group id   ARGV[3] outcome: delivered | dead | group_gone
-- ARGV[4] ErrorCode   ARGV[5] ErrorInfo   ARGV[6] outcome stream max length (approximate)
-- ARGV[7] call id (fresh per call; the same in a replay)   ARGV[8] how long to keep the reply, ms
-- ARGV[9] API calls to count (the call this batch just had, if any)   ARGV[10] how long to keep trace records, ms
-- ARGV[11..] members
-- Returns {acked, stale, latency_ms of each acked member (now - due)...}
local K_STATS, K_META, K_INFLIGHT, K_LEASES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_VERSIONS, K_VERSION_ENDS = KEYS[5], KEYS[6]
local K_OUTCOMES, K_TRACE, K_DEAD, K_DEAD_INFO, K_OK_GROUPS = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local K_REPLIES, K_REPLY_EXPIRY = KEYS[12], KEYS[13]
local replayed = reply_get(K_REPLIES, ARGV[7])
if replayed then return replayed end
local token, group, outcome = ARGV[1], ARGV[2], ARGV[3]
local traced = has_room(K_STATS, outcome)  -- probe: do trace records fit? (has_room, _lib.lua)
proceed_when_full(K_STATS)  -- first write: delivery drains a full Redis (see _lib.lua)
local now = now_ms()
local acked, stale = 0, 0
local out = {0, 0}
for i = 11, #ARGV do
  local member = ARGV[i]
  local rid = group .. SEP .. member
  local ltoken, due, high = parse_lease(redis.call('HGET', K_LEASES, rid), now)
  if ltoken == token then
    redis.call('ZREM', K_INFLIGHT, rid)
    redis.call('HDEL', K_LEASES, rid)
    local attempts = parse_meta(redis.call('HGET', K_META, rid)) + 1
    redis.call('HDEL', K_META, rid)
    -- The version applied when it ended ('' for none): the trace record keeps it, and dead_replay.lua skips
    -- the dead letter if a later cancel or a higher version ended the request since.
    local version = version_ended(K_VERSIONS, K_VERSION_ENDS, rid, now)
    emit_outcome(K_OUTCOMES, ARGV[6], group, member, outcome, ARGV[4], ARGV[5], attempts, due, now)
    if traced then trace_end(K_TRACE, ARGV[10], group, member, outcome, now, attempts, ARGV[4], version, ARGV[5]) end
    if outcome == 'dead' then
      redis.call('ZADD', K_DEAD, now, rid)
      redis.call('HSET', K_DEAD_INFO, rid, cjson.encode({
        code = tonumber(ARGV[4]), info = ARGV[5], attempts = attempts, at_ms = now,
        due_ms = tonumber(due), high = high == '1', version = version}))
    end
    acked = acked + 1
    out[#out + 1] = now - tonumber(due)
  else
    stale = stale + 1
  end
end
out[1], out[2] = acked, stale
if acked > 0 then redis.call('HINCRBY', K_STATS, outcome, acked) end
if acked > 0 and outcome == 'delivered' then
  -- 10007 evidence (hold.py): the last two distinct groups that got a delivered answer, and when.
  local g1, t1 = unpack(redis.call('HMGET', K_OK_GROUPS, 'g1', 't1'))
  if g1 and g1 ~= group then redis.call('HSET', K_OK_GROUPS, 'g2', g1, 't2', t1) end
  redis.call('HSET', K_OK_GROUPS, 'g1', group, 't1', now)
end
if stale > 0 then redis.call('HINCRBY', K_STATS, 'stale_acks', stale) end
if acked > 0 and not traced then redis.call('HINCRBY', K_STATS, 'untraced', acked) end
-- The per-call counter rides here instead of costing a round trip of its own (delivery.py).
if tonumber(ARGV[9]) > 0 then redis.call('HINCRBY', K_STATS, 'calls', ARGV[9]) end
reply_put(K_REPLIES, K_REPLY_EXPIRY, ARGV[7], out, ARGV[8], now)
return out
