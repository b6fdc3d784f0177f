-- promote: move scheduled requests that are due (on the server clock) into their group's ready set.
-- KEYS[1] sched   KEYS[2] groups   KEYS[3] stats   KEYS[4] high
-- KEYS[5..4+n] ready:{group} for each group named in ARGV, in the same order
-- ARGV[1] "linger_ms:max_linger_ms"   ARGV[2] the most requests to move
-- ARGV[3] n, the number of groups; ARGV[4..3+n] the group ids matching KEYS[5..] (the caller read
--         the due head of `sched` to name them)
-- It walks the head of `sched` by rank and cuts the moved prefix with one ZREMRANGEBYRANK, so no
-- request is looked up in the big set one by one. A request of a group the caller did not name
-- (scheduled in between) ends the round; the next round takes it.
-- Returns the number of requests made ready.
local linger, limit, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local index = {}
for i = 1, n do index[ARGV[3 + i]] = i end
local now = now_ms()
local head = redis.call('ZRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
local dirty = {}
local taken, promoted = 0, 0
for i = 1, #head, 2 do
  local rid, due = head[i], tonumber(head[i + 1])
  if due > now then break end
  local cut = string.find(rid, SEP, 1, true)
  local gi = cut and index[string.sub(rid, 1, cut - 1)]
  if not gi then break end
  local high = redis.call('HEXISTS', KEYS[4], rid) == 1
  -- NX: a copy already ready (possible only after a lease was reaped) stays as it is.
  if redis.call('ZADD', KEYS[4 + gi], 'NX', ready_score(due, high), string.sub(rid, cut + 1)) == 1 then
    promoted = promoted + 1
    dirty[gi] = true
  end
  taken = taken + 1
end
if taken > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, taken - 1) end
for gi, _ in pairs(dirty) do reindex(KEYS[2], KEYS[4 + gi], ARGV[3 + gi], linger) end
if promoted > 0 then
  redis.call('HINCRBY', KEYS[3], 'ready', promoted)
  redis.call('HINCRBY', KEYS[3], 'promoted', promoted)
end
return promoted
