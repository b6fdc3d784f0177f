-- unacked_restore: put an unacknowledged message back in its queue(s), also on a full Redis: a rejected
-- message (Redis full, durability not confirmed), a consumer's at shutdown, or one past its visibility
-- timeout (a worker died holding it). The caller read the entry and built the payload (kombu's routing
-- and its "redelivered" flags); this moves it only if the entry is still the one read (kombu's WATCH),
-- so two consumers never both restore it. ZREM goes first: a write that cannot grow memory, so Redis
-- lets the script through at maxmemory; the message moves from the hash to a list, about the same room.
-- KEYS[1] unacked_index   ZSET delivery tag -> time   KEYS[2] unacked   HASH delivery tag -> JSON
-- KEYS[3..] the queues (LISTs) the message goes back to
-- ARGV[1] delivery tag   ARGV[2] the entry as read ('' when there was none)   ARGV[3] the payload to push
-- ARGV[4] '1' to push at the left end (kombu's "leftmost": behind the others), else the right (next)
-- Returns 1 if restored, 0 if the entry was gone or changed meanwhile (nothing moved).
local K_UNACKED_INDEX, K_UNACKED = KEYS[1], KEYS[2]
redis.call('ZREM', K_UNACKED_INDEX, '')
local entry = redis.call('HGET', K_UNACKED, ARGV[1])
if not entry then
  redis.call('ZREM', K_UNACKED_INDEX, ARGV[1])  -- as kombu: an index entry without its message goes
  return 0
end
if entry ~= ARGV[2] then return 0 end
redis.call('ZREM', K_UNACKED_INDEX, ARGV[1])
redis.call('HDEL', K_UNACKED, ARGV[1])
local push = ARGV[4] == '1' and 'LPUSH' or 'RPUSH'
for i = 3, #KEYS do
  redis.call(push, KEYS[i], ARGV[3])
end
return 1
