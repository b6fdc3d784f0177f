-- reap: return requests whose lease expired (their worker died or stalled) to the schedule, due at once.
-- KEYS[1] inflight   KEYS[2] leases   KEYS[3] sched   KEYS[4] stats   KEYS[5] high
-- ARGV[1] the most requests to reap in this call
-- They go through `sched` (score = original due time, already past) and the next promote makes
-- them ready, which keeps this script on fixed keys. NX: a newer pending instruction wins.
-- Returns the number of requests reaped.
local now = now_ms()
local expired = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
local reaped = 0
for _, rid in ipairs(expired) do
  local lease = redis.call('HGET', KEYS[2], rid)
  local due, high = now, '0'
  if lease then
    local _, d, h = string.match(lease, '^([^|]*)|([^|]*)|(.*)$')
    due, high = tonumber(d), h
  end
  redis.call('ZREM', KEYS[1], rid)
  redis.call('HDEL', KEYS[2], rid)
  if redis.call('ZADD', KEYS[3], 'NX', due, rid) == 1 and high == '1' then
    redis.call('HSET', KEYS[5], rid, 1)
  end
  reaped = reaped + 1
end
if reaped > 0 then redis.call('HINCRBY', KEYS[4], 'reaped', reaped) end
return reaped
