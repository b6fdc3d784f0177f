-- promote: move scheduled requests that are due (on the server clock) into their group's ready set.
-- KEYS[1] sched   KEYS[2] groups   KEYS[3] stats   KEYS[4] high
-- KEYS[5..4+n] ready:{group} for each group named in ARGV, in the same order
-- ARGV[1] "linger_ms:max_linger_ms"
-- ARGV[2] n, the number of groups; ARGV[3..2+n] the group ids matching KEYS[5..]
-- ARGV[3+n..] pairs: group index (1-based), member — candidates read by the caller; re-checked here
-- Returns the number promoted.
local linger = ARGV[1]
local n = tonumber(ARGV[2])
local now = now_ms()
local dirty = {}
local promoted = 0
for i = 3 + n, #ARGV, 2 do
  local gi = tonumber(ARGV[i])
  local group, member = ARGV[2 + gi], ARGV[i + 1]
  local rid = group .. SEP .. member
  local due = redis.call('ZSCORE', KEYS[1], rid)
  if due and tonumber(due) <= now then
    redis.call('ZREM', KEYS[1], rid)
    local high = redis.call('HEXISTS', KEYS[4], rid) == 1
    -- NX: a copy already ready (possible only after a lease was reaped) stays as it is.
    if redis.call('ZADD', KEYS[4 + gi], 'NX', ready_score(tonumber(due), high), member) == 1 then
      promoted = promoted + 1
      dirty[gi] = true
    end
  end
end
for gi, _ in pairs(dirty) do reindex(KEYS[2], KEYS[4 + gi], ARGV[2 + gi], linger) end
if promoted > 0 then
  redis.call('HINCRBY', KEYS[3], 'ready', promoted)
  redis.call('HINCRBY', KEYS[3], 'promoted', promoted)
end
return promoted
