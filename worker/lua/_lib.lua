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

-- Re-score `group` in the groups index: the time its next batch may be claimed.
-- A full batch or a high-priority member is claimable at once; otherwise the oldest due
-- member waits `linger_ms` more so that a burst can coalesce into one call.
local function reindex(groups_key, ready_key, group, linger_ms)
  local head = redis.call('ZRANGE', ready_key, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', groups_key, group)
    return
  end
  local score = tonumber(head[2])
  if score >= 0 and redis.call('ZCARD', ready_key) < FULL_BATCH then
    score = score + linger_ms
  end
  redis.call('ZADD', groups_key, score, group)
end

-- Score of a ready member: its due time, pushed below every normal score when high priority.
local function ready_score(due, high)
  if high then return due - HIGH_BAND end
  return due
end
