-- group_gone: the group no longer exists (10010); end every ready member of it as `group_gone`.
-- KEYS[1] ready:{group}   KEYS[2] groups   KEYS[3] stats   KEYS[4] outcomes   KEYS[5] high   KEYS[6] meta
-- ARGV[1] group id   ARGV[2] ErrorCode   ARGV[3] ErrorInfo   ARGV[4] outcome stream max length
-- (The leased batch that got the answer is ended by ack.lua; scheduled members meet 10010 when due.)
-- Returns the number of ready members ended.
local group = ARGV[1]
local now = now_ms()
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
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
local ended = #members / 2
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], group)
if ended > 0 then
  redis.call('HINCRBY', KEYS[3], 'ready', -ended)
  redis.call('HINCRBY', KEYS[3], 'group_gone', ended)
end
return ended
