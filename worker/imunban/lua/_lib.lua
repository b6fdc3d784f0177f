-- Shared helpers, prepended to every script by worker/scripts.py. Touches no key of its own.
-- luacheck: globals ARGV KEYS redis cjson

local SEP = '\031'            -- request id = group .. SEP .. member (keys.SEP)
local HIGH_BAND = 10000000000000  -- keys.HIGH_BAND_MS: high-priority members score below every normal one
local FULL_BATCH = 20         -- the API's maximum members per call

-- The Redis server's clock in milliseconds: the one clock every due-time comparison uses.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- "linger_ms:max_linger_ms" (as Store passes it) -> two numbers.
local function parse_linger(arg)
  local linger, max_linger = string.match(tostring(arg), '^(%d+):?(%d*)$')
  linger = tonumber(linger)
  return linger, tonumber(max_linger) or linger
end

-- Re-score `group` in the groups index: the time its next batch may be claimed.
-- A full batch or a high-priority member is claimable at once. Otherwise the group lingers so a
-- burst can coalesce into one call: until no member has arrived for `linger_ms`, but never more
-- than `max_linger_ms` after its oldest due member (the newest ready score is the latest arrival).
local function reindex(groups_key, ready_key, group, linger_arg)
  local head = redis.call('ZRANGE', ready_key, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', groups_key, group)
    return
  end
  local score = tonumber(head[2])
  if score >= 0 and redis.call('ZCARD', ready_key) < FULL_BATCH then
    local linger, max_linger = parse_linger(linger_arg)
    local newest = tonumber(redis.call('ZRANGE', ready_key, -1, -1, 'WITHSCORES')[2])
    score = math.min(score + max_linger, newest + linger)
  end
  redis.call('ZADD', groups_key, score, group)
end

-- Re-score `group` in the schedule index: the earliest due time in its schedule, or no entry.
local function reindex_sched(schedidx_key, sched_key, group)
  local head = redis.call('ZRANGE', sched_key, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', schedidx_key, group)
  else
    redis.call('ZADD', schedidx_key, head[2], group)
  end
end

-- A lease record "token|due_ms|high" -> token, due (a number), high ('1' or '0').
-- A missing record gives no token, due `now` and normal priority.
local function parse_lease(lease, now)
  if not lease then return nil, now, '0' end
  local token, due, high = string.match(lease, '^([^|]*)|([^|]*)|(.*)$')
  return token, tonumber(due), high
end

-- Score of a ready member: its due time, pushed below every normal score when high priority.
local function ready_score(due, high)
  if high then return due - HIGH_BAND end
  return due
end
