-- dead_replay: move dead letters back to the schedule, due at once, with a fresh attempt budget.
-- KEYS[1] dead   KEYS[2] dead_info   KEYS[3] sched   KEYS[4] stats   KEYS[5] high
-- ARGV[1] the most to replay   ARGV[2..] specific request ids (none = the oldest dead letters)
-- NX: a request that is pending again already keeps its newer instruction.
-- Returns the number replayed.
local rids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do rids[#rids + 1] = ARGV[i] end
else
  rids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
end
local now = now_ms()
local replayed = 0
for _, rid in ipairs(rids) do
  if redis.call('ZREM', KEYS[1], rid) == 1 then
    local info = redis.call('HGET', KEYS[2], rid)
    redis.call('HDEL', KEYS[2], rid)
    if redis.call('ZADD', KEYS[3], 'NX', now, rid) == 1 then
      if info and cjson.decode(info).high then redis.call('HSET', KEYS[5], rid, 1) end
      replayed = replayed + 1
    end
  end
end
if replayed > 0 then redis.call('HINCRBY', KEYS[4], 'replayed', replayed) end
return replayed
