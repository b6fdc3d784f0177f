-- throughput_sample: keep one snapshot of the app's counters per minute, for the throughput history of the last
-- 24 h (imunban.throughput). Any number of callers (every console replica) may call it as often as they like:
-- the first call in a minute writes that minute's snapshot, the others find it and write nothing, so the
-- history is the same for everyone and survives any caller's restart. Snapshots older than ARGV[1] minutes
-- are trimmed here, and the key expires when nobody samples any more. What it writes is bounded (a few
-- hundred bytes per minute), so a full Redis lets it through (proceed_when_full): the history of a full day
-- is the one an operator wants to read.
-- KEYS[1] stats   HASH counters (delivered, calls)
-- KEYS[2] throughput   ZSET "minute:at_ms:delivered:calls" -> minute (epoch minutes)
-- ARGV[1] minutes to keep
-- Returns the minute written, or 0 when this minute had its snapshot already.
local K_STATS, K_THROUGHPUT = KEYS[1], KEYS[2]
proceed_when_full(K_THROUGHPUT)
local keep = tonumber(ARGV[1])
local now = now_ms()
local minute = math.floor(now / 60000)
if redis.call('ZCOUNT', K_THROUGHPUT, minute, minute) > 0 then
  return 0
end
local counters = redis.call('HMGET', K_STATS, 'delivered', 'calls')
local delivered, calls = tonumber(counters[1]) or 0, tonumber(counters[2]) or 0
redis.call('ZADD', K_THROUGHPUT, minute, minute .. ':' .. now .. ':' .. delivered .. ':' .. calls)
redis.call('ZREMRANGEBYSCORE', K_THROUGHPUT, '-inf', '(' .. (minute - keep))
redis.call('PEXPIRE', K_THROUGHPUT, (keep + 1) * 60000)
return minute
