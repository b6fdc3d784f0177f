-- ack: end leased requests with one outcome, after the API answered. Stale leases are skipped.
-- KEYS[1] stats   KEYS[2] meta   KEYS[3] inflight   KEYS[4] leases   KEYS[5] outcomes (stream)
-- KEYS[6] dead    KEYS[7] dead_info
-- ARGV[1] lease token   ARGV[2] group id   ARGV[3] outcome: delivered | dead | group_gone
-- ARGV[4] ErrorCode   ARGV[5] ErrorInfo   ARGV[6] outcome stream max length (approximate)
-- ARGV[7..] members
-- Returns {acked, stale, latency_ms of each acked member (now - due)...}
local K_STATS, K_META, K_INFLIGHT, K_LEASES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_OUTCOMES, K_DEAD, K_DEAD_INFO = KEYS[5], KEYS[6], KEYS[7]
local token, group, outcome = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local acked, stale = 0, 0
local out = {0, 0}
for i = 7, #ARGV do
  local member = ARGV[i]
  local rid = group .. SEP .. member
  local ltoken, due, high = parse_lease(redis.call('HGET', K_LEASES, rid), now)
  if ltoken == token then
    redis.call('ZREM', K_INFLIGHT, rid)
    redis.call('HDEL', K_LEASES, rid)
    local attempts = parse_meta(redis.call('HGET', K_META, rid)) + 1
    redis.call('HDEL', K_META, rid)
    emit_outcome(K_OUTCOMES, ARGV[6], group, member, outcome, ARGV[4], ARGV[5], attempts, due, now)
    if outcome == 'dead' then
      redis.call('ZADD', K_DEAD, now, rid)
      redis.call('HSET', K_DEAD_INFO, rid, cjson.encode({
        code = tonumber(ARGV[4]), info = ARGV[5], attempts = attempts, at_ms = now,
        due_ms = tonumber(due), high = high == '1'}))
    end
    acked = acked + 1
    out[#out + 1] = now - tonumber(due)
  else
    stale = stale + 1
  end
end
out[1], out[2] = acked, stale
if acked > 0 then redis.call('HINCRBY', K_STATS, outcome, acked) end
if stale > 0 then redis.call('HINCRBY', K_STATS, 'stale_acks', stale) end
return out
