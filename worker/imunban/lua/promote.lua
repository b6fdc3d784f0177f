-- promote: move scheduled requests that are due (on the server clock) into their group's ready set.
-- KEYS[1] schedidx   KEYS[2] groups   KEYS[3] stats   KEYS[4] high
-- KEYS[5..4+2n] per group, in the order of the group ids in ARGV: ready:{group} sched:{group}
-- ARGV[1] linger_ms   ARGV[2] the most requests to move in this call
-- ARGV[3] n, the number of groups; ARGV[4..3+n] the group ids (the caller read the due head of
--         `schedidx` to name them)
-- Per group it reads the due head of `sched:{group}` and cuts it with one ZREMRANGEBYRANK, then
-- re-indexes the group in `schedidx` and `groups`. A group that is not due (any more) moves nothing.
-- Returns {taken, promoted}: scheduled entries removed, and requests made ready (a copy already
-- ready is kept as it is, so it is taken but not promoted).
local K_SCHEDIDX, K_GROUPS, K_STATS, K_HIGH = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
proceed_when_full(K_STATS)  -- first write: delivery drains a full Redis (see _lib.lua)
local linger, limit, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local taken, promoted = 0, 0
for gi = 1, n do
  if taken >= limit then break end
  local group = ARGV[3 + gi]
  local ready_key, sched_key = group_keys(4, gi)
  local due = redis.call('ZRANGE', sched_key, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit - taken, 'WITHSCORES')
  if #due > 0 then
    local moved = 0
    for i = 1, #due, 2 do
      local member = due[i]
      local high = redis.call('HEXISTS', K_HIGH, group .. SEP .. member) == 1
      -- NX: a copy already ready stays as it is.
      if redis.call('ZADD', ready_key, 'NX', ready_score(tonumber(due[i + 1]), high), member) == 1 then
        moved = moved + 1
      end
    end
    redis.call('ZREMRANGEBYRANK', sched_key, 0, #due / 2 - 1)
    reindex_sched(K_SCHEDIDX, sched_key, group)
    if moved > 0 then reindex(K_GROUPS, ready_key, group, linger, K_STATS) end
    taken = taken + #due / 2
    promoted = promoted + moved
  end
end
if taken > 0 then redis.call('HINCRBY', K_STATS, 'scheduled', -taken) end
if promoted > 0 then
  redis.call('HINCRBY', K_STATS, 'ready', promoted)
  redis.call('HINCRBY', K_STATS, 'promoted', promoted)
end
return {taken, promoted}
