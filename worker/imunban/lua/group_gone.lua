-- group_gone: the group no longer exists (10010); end every pending member of it (ready or
-- scheduled) as `group_gone`.
-- KEYS[1] ready:{group}   KEYS[2] groups   KEYS[3] stats   KEYS[4] outcomes   KEYS[5] high   KEYS[6] meta
-- KEYS[7] sched:{group}   KEYS[8] schedidx
-- ARGV[1] group id   ARGV[2] ErrorCode   ARGV[3] ErrorInfo   ARGV[4] outcome stream max length
-- (The leased batch that got the answer is ended by ack.lua; other leased members meet 10010 in turn.)
-- Returns the number of pending members ended.
local group = ARGV[1]
local now = now_ms()
local function finish(members)
  for i = 1, #members, 2 do
    local member, due = members[i], tonumber(members[i + 1])
    if due < 0 then due = due + HIGH_BAND end
    local rid = group .. SEP .. member
    redis.call('HDEL', KEYS[5], rid)
    redis.call('HDEL', KEYS[6], rid)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*',
      'group_id', group, 'member', member, 'outcome', 'group_gone', 'code', ARGV[2], 'info', ARGV[3],
      'attempts', 0, 'due_ms', due, 'at_ms', now)
  end
  return #members / 2
end
local ready_ended = finish(redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'))
local sched_ended = finish(redis.call('ZRANGE', KEYS[7], 0, -1, 'WITHSCORES'))
redis.call('DEL', KEYS[1], KEYS[7])
redis.call('ZREM', KEYS[2], group)
redis.call('ZREM', KEYS[8], group)
if ready_ended > 0 then redis.call('HINCRBY', KEYS[3], 'ready', -ready_ended) end
if sched_ended > 0 then redis.call('HINCRBY', KEYS[3], 'scheduled', -sched_ended) end
if ready_ended + sched_ended > 0 then redis.call('HINCRBY', KEYS[3], 'group_gone', ready_ended + sched_ended) end
return ready_ended + sched_ended
