-- unacked_remove: forget an acknowledged (or rejected, not requeued) message; deletes only, so a full
-- Redis runs it (kombu's MULTI of the same two deletes is refused at maxmemory).
-- KEYS[1] unacked_index   ZSET delivery tag -> time   KEYS[2] unacked   HASH delivery tag -> JSON
-- ARGV[1] delivery tag
-- Returns 1 if the message was still recorded, else 0.
local K_UNACKED_INDEX, K_UNACKED = KEYS[1], KEYS[2]
redis.call('ZREM', K_UNACKED_INDEX, ARGV[1])
return redis.call('HDEL', K_UNACKED, ARGV[1])
