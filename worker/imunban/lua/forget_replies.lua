-- forget_replies: forget the replies kept for replayed calls once they expired. Claim, ack, requeue and
-- dispatch each forget a few as they add theirs; when delivery stops nobody would, and a drain at the
-- API's full rate leaves about a minute of replies behind (megabytes): the pump's maintenance clears
-- them, so the memory a drain frees comes back also on an idle (or full) Redis.
-- KEYS[1] replies        HASH call id -> encoded reply
-- KEYS[2] reply_expiry   ZSET call id -> ms its reply may be forgotten
-- ARGV[1] the most replies to forget in this call
-- Returns the number of replies forgotten.
local K_REPLIES, K_REPLY_EXPIRY = KEYS[1], KEYS[2]
proceed_when_full(K_REPLIES)  -- first write: maintenance runs on a full Redis (see _lib.lua)
local old = redis.call('ZRANGE', K_REPLY_EXPIRY, '-inf', now_ms(), 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
if #old > 0 then
  redis.call('HDEL', K_REPLIES, unpack(old))
  redis.call('ZREM', K_REPLY_EXPIRY, unpack(old))
end
return #old
