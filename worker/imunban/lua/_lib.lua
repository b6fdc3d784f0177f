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

-- The Redis server's clock in microseconds (the rate limiter's schedule).
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Scripts over many groups take, after their `common` named keys, two keys per group in the order
-- of the group ids in ARGV: ready:{group} then sched:{group}. Returns those of the group with
-- 1-based index `gi`. The one place a script body indexes KEYS by arithmetic.
local function group_keys(common, gi)
  return KEYS[common + 2 * gi - 1], KEYS[common + 2 * gi]
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

-- A meta record "attempts|first_failure_ms|last_code|due_ms" (only requeue.lua writes it) ->
-- attempts, first_failure_ms and due_ms as numbers, last_code as text.
-- A missing record gives 0 attempts and nothing else.
local function parse_meta(meta)
  if not meta then return 0 end
  local attempts, first, code, due = string.match(meta, '^(%d+)|(%d+)|([^|]*)|(%d+)$')
  return tonumber(attempts), tonumber(first), code, tonumber(due)
end

-- Score of a ready member: its due time, pushed below every normal score when high priority.
local function ready_score(due, high)
  if high then return due - HIGH_BAND end
  return due
end

-- A ready member's score -> its due time and whether it is high priority (undoes ready_score).
local function decode_ready_score(score)
  if score < 0 then return score + HIGH_BAND, true end
  return score, false
end

-- Append one ended request to the outcomes stream, capped near `maxlen` entries.
local function emit_outcome(outcomes_key, maxlen, group, member, outcome, code, info, attempts, due, now)
  redis.call('XADD', outcomes_key, 'MAXLEN', '~', maxlen, '*',
    'group_id', group, 'member', member, 'outcome', outcome, 'code', code, 'info', info,
    'attempts', attempts, 'due_ms', due, 'at_ms', now)
end
