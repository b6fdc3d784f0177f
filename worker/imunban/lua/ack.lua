-- ack: end leased requests with one outcome, after the API answered. Stale leases are skipped.
-- KEYS[1] inflight   KEYS[2] leases   KEYS[3] meta   KEYS[4] stats   KEYS[5] outcomes (stream)
-- KEYS[6] dead       KEYS[7] dead_info
-- ARGV[1] lease token   ARGV[2] group id   ARGV[3] outcome: delivered | dead | group_gone
-- ARGV[4] ErrorCode   ARGV[5] ErrorInfo   ARGV[6] outcome stream max length (approximate)
-- ARGV[7..] members
-- Returns {acked, stale, latency_ms of each acked member (now - due)...}
local token, group, outcome = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local acked, stale = 0, 0
local out = {0, 0}
for i = 7, #ARGV do
  local member = ARGV[i]
  local rid = group .. SEP .. member
  local ltoken, due, high = parse_lease(redis.call('HGET', KEYS[2], rid), now)
  if ltoken == token then
    redis.call('ZREM', KEYS[1], rid)
    redis.call('HDEL', KEYS[2], rid)
    local attempts = 1
    local meta = redis.call('HGET', KEYS[3], rid)
    if meta then attempts = tonumber(string.match(meta, '^(%d+)')) + 1 end
    redis.call('HDEL', KEYS[3], rid)
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*',
      'group_id', group, 'member', member, 'outcome', outcome, 'code', ARGV[4], 'info', ARGV[5],
      'attempts', attempts, 'due_ms', due, 'at_ms', now)
    if outcome == 'dead' then
      redis.call('ZADD', KEYS[6], now, rid)
      redis.call('HSET', KEYS[7], rid, cjson.encode({
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
if acked > 0 then redis.call('HINCRBY', KEYS[4], outcome, acked) end
if stale > 0 then redis.call('HINCRBY', KEYS[4], 'stale_acks', stale) end
return out
