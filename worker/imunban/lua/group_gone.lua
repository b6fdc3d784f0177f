-- group_gone: the group no longer exists (10010); end every pending member of it (ready or
-- scheduled) as `group_gone`.
-- Each one's trace record says so (unless Redis is full: has_room in _lib.lua).
-- KEYS[1] schedidx   KEYS[2] groups   KEYS[3] stats   KEYS[4] high   KEYS[5] meta   KEYS[6] versions
-- KEYS[7] version_ends   KEYS[8] outcomes   KEYS[9] trace (shard prefix)   KEYS[10] ready:{group}
-- KEYS[11] sched:{group}
-- ARGV[1] group id   ARGV[2] ErrorCode   ARGV[3] ErrorInfo   ARGV[4] outcome stream max length
-- ARGV[5] how long to keep trace records, ms
-- (The leased batch that got the answer is ended by ack.lua; other leased members meet 10010 in turn.)
-- Returns the number of pending members ended.
local K_SCHEDIDX, K_GROUPS, K_STATS, K_HIGH, K_META = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_VERSIONS, K_VERSION_ENDS, K_OUTCOMES, K_TRACE = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_READY, K_SCHED = KEYS[10], KEYS[11]
local group = ARGV[1]
local traced = has_room(K_STATS, 'group_gone')  -- probe: do trace records fit? (has_room, _lib.lua)
proceed_when_full(K_STATS)  -- first write: delivery drains a full Redis (see _lib.lua)
local now = now_ms()
local function finish(members)
  for i = 1, #members, 2 do
    local member = members[i]
    local due = decode_ready_score(tonumber(members[i + 1]))
    local rid = group .. SEP .. member
    redis.call('HDEL', K_HIGH, rid)
    redis.call('HDEL', K_META, rid)
    local version = version_ended(K_VERSIONS, K_VERSION_ENDS, rid, now)
    emit_outcome(K_OUTCOMES, ARGV[4], group, member, 'group_gone', ARGV[2], ARGV[3], 0, due, now)
    if traced then trace_end(K_TRACE, ARGV[5], group, member, 'group_gone', now, 0, ARGV[2], version, ARGV[3]) end
  end
  return #members / 2
end
local ready_ended = finish(redis.call('ZRANGE', K_READY, 0, -1, 'WITHSCORES'))
local sched_ended = finish(redis.call('ZRANGE', K_SCHED, 0, -1, 'WITHSCORES'))
redis.call('DEL', K_READY, K_SCHED)
redis.call('ZREM', K_GROUPS, group)
redis.call('ZREM', K_SCHEDIDX, group)
if ready_ended > 0 then redis.call('HINCRBY', K_STATS, 'ready', -ready_ended) end
if sched_ended > 0 then redis.call('HINCRBY', K_STATS, 'scheduled', -sched_ended) end
if ready_ended + sched_ended > 0 then redis.call('HINCRBY', K_STATS, 'group_gone', ready_ended + sched_ended) end
if ready_ended + sched_ended > 0 and not traced then
  redis.call('HINCRBY', K_STATS, 'untraced', ready_ended + sched_ended)
end
return ready_ended + sched_ended
