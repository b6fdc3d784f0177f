-- dispatch: mark delivery slots for claimable groups so each slot gets exactly one delivery task.
-- KEYS[1] dispatch   ZSET "group SEP slot" -> ms the marker expires (refreshed by the running task)
-- KEYS[2] hold       HASH present while delivery is held
-- KEYS[3] pause      HASH present while an operator paused delivery
-- KEYS[4] replies    KEYS[5] reply_expiry: a replayed call (same call id) gets the slots the first marked
-- ARGV[1] marker ttl_ms   ARGV[2] the most markers alive at once (bounds tasks waiting in the broker)
-- ARGV[3] call id (fresh per call; the same in a replay)   ARGV[4..] pairs: group id, slots wanted for it
-- Returns a flat list {group, slot, group, slot, ...} of newly marked slots: send one task for each.
local K_DISPATCH, K_HOLD, K_PAUSE, K_REPLIES, K_REPLY_EXPIRY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
proceed_when_full(K_DISPATCH)  -- first write: delivery drains a full Redis (see _lib.lua)
local replayed = reply_get(K_REPLIES, ARGV[3])
if replayed then return replayed end
if redis.call('EXISTS', K_HOLD) == 1 or redis.call('EXISTS', K_PAUSE) == 1 then return {} end
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', K_DISPATCH, '-inf', now)
local alive = redis.call('ZCARD', K_DISPATCH)
local cap = tonumber(ARGV[2])
local out = {}
for i = 4, #ARGV, 2 do
  local group = ARGV[i]
  for slot = 0, tonumber(ARGV[i + 1]) - 1 do
    if alive >= cap then break end
    if redis.call('ZADD', K_DISPATCH, 'NX', now + tonumber(ARGV[1]), group .. SEP .. slot) == 1 then
      alive = alive + 1
      out[#out + 1] = group
      out[#out + 1] = slot
    end
  end
end
-- The reply lives as long as the markers it names: a replay after that would hand out stale slots.
if #out > 0 then reply_put(K_REPLIES, K_REPLY_EXPIRY, ARGV[3], out, ARGV[1], now) end
return out
