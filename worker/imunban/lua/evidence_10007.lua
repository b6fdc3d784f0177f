-- evidence_10007: record that `group` answered 10007 and count the distinct groups that did lately.
-- 10007 means "feature off / wrong edition" (global) or "this group's type is unsupported" (one
-- group); the same code from several groups within the window is the evidence for global.
-- KEYS[1] e10007   ZSET group -> ms of its latest 10007
-- ARGV[1] group id   ARGV[2] window_ms
-- Returns the number of distinct groups that answered 10007 within the window.
local K_E10007 = KEYS[1]
local now = now_ms()
redis.call('ZADD', K_E10007, now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', K_E10007, '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', K_E10007, tonumber(ARGV[2]))
return redis.call('ZCARD', K_E10007)
