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

-- migrate.lua takes, after its `common` named keys, pairs of keys: the old name and the new name of
-- each key it moves. Returns those of pair `i` (1-based), as group_keys does for groups.
local function moved_keys(common, i)
  return KEYS[common + 2 * i - 1], KEYS[common + 2 * i]
end

-- The linger bound in ms (as Store passes it, LingerPolicy.script_arg) -> a number.
local function parse_linger(arg)
  return tonumber(arg) or 0
end

-- The limiter's recent pace, kept by limiter_reserve.lua in the stats hash: `pace` is a count of
-- reservations decayed with time constant PACE_TAU_US (so pace / tau is calls per second), as of
-- `pace_us`; `pace_interval_us` is the limiter's interval (1 / its calls per second).
local PACE_TAU_US = 1000000
-- Below this share of the limit the limiter has calls to spare: a due batch goes at once.
local SPARE_USE = 0.5
-- At this share and above the wait has grown all the way to the oldest-first round (see linger_ms).
local FULL_USE = 0.9

-- Count one reservation into the pace (limiter_reserve.lua); `booked_until` is the schedule's end
-- after it (the new TAT): callers already queued for slots mean no call is to spare right now.
local function pace_count(stats_key, now, interval, booked_until)
  local t, count = unpack(redis.call('HMGET', stats_key, 'pace_us', 'pace'))
  count = (tonumber(count) or 0) * math.exp(-(now - (tonumber(t) or now)) / PACE_TAU_US) + 1
  redis.call('HSET', stats_key, 'pace_us', now, 'pace', string.format('%.4f', count), 'pace_interval_us', interval,
    'pace_booked_us', booked_until)
end

-- (share of the limit used lately, the limiter's interval in ms); (0, 0) before any reservation.
-- A schedule booked more than one interval ahead counts as the limit fully used (the Python twin
-- is imunban.linger.limiter_use): the pace alone needs a second to notice a sudden burst.
local function pace_use(stats_key, now)
  local t, count, interval, booked = unpack(redis.call('HMGET', stats_key, 'pace_us', 'pace', 'pace_interval_us',
    'pace_booked_us'))
  if not (t and count and interval) then return 0, 0 end
  interval = tonumber(interval)
  local rate = tonumber(count) * math.exp(-math.max(0, now - tonumber(t)) / PACE_TAU_US) / PACE_TAU_US
  local use = rate * interval
  if (tonumber(booked) or 0) - now > interval then use = math.max(use, 1) end
  return use, interval / 1000
end

-- How long a partial batch waits for company (imunban.linger.linger_ms is the Python twin; keep them
-- equal). While the limiter has calls to spare, nothing: lingering would only add latency. As the
-- calls near the limit, the wait grows toward one oldest-first round, `waiting` groups x the interval:
-- the time the limiter needs to give every waiting group one call, which is the wait an oldest-first
-- queue at the limit settles on anyway (the oldest-first bound W of docs/semantics.md#targets). Never more than `bound_ms`.
local function linger_ms(use, waiting, interval_ms, bound_ms)
  if use <= SPARE_USE then return 0 end
  local ramp = math.min(1, (use - SPARE_USE) / (FULL_USE - SPARE_USE))
  return math.floor(math.min(bound_ms, ramp * waiting * interval_ms))
end

-- Re-score `group` in the groups index: the time its next batch may be claimed.
-- A full batch or a high-priority member is claimable at once; otherwise at its oldest due member
-- plus linger_ms, decided from the limiter's pace now (`linger_arg` is the bound).
local function reindex(groups_key, ready_key, group, linger_arg, stats_key)
  local head = redis.call('ZRANGE', ready_key, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', groups_key, group)
    return
  end
  local score = tonumber(head[2])
  if score >= 0 and redis.call('ZCARD', ready_key) < FULL_BATCH then
    local bound = parse_linger(linger_arg)
    if bound > 0 then
      local use, interval_ms = pace_use(stats_key, now_us())
      score = score + linger_ms(use, redis.call('ZCARD', groups_key), interval_ms, bound)
    end
  end
  redis.call('ZADD', groups_key, score, group)
end

-- Something became claimable now: wake one waiting pump (pump.py BLPOPs this list). Capped: a
-- burst of enqueues leaves a few tokens, not one per call.
local WAKE_CAP = 4
local function wake(wake_key)
  redis.call('LPUSH', wake_key, 1)
  redis.call('LTRIM', wake_key, 0, WAKE_CAP - 1)
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
-- The entry says its app: the name inside the key's hash tag {PREFIX:APP} (an app name never holds
-- ':', '{' or '}'; keys.py), so no caller passes it and every script stays as it is.
local function emit_outcome(outcomes_key, maxlen, group, member, outcome, code, info, attempts, due, now)
  local app = string.match(outcomes_key, '^{[^}]*:([^:{}]*)}') or ''
  redis.call('XADD', outcomes_key, 'MAXLEN', '~', maxlen, '*',
    'group_id', group, 'member', member, 'outcome', outcome, 'code', code, 'info', info,
    'attempts', attempts, 'due_ms', due, 'at_ms', now, 'app', app)
end

-- Append an operator's audit entry, in the same fields as the console's (imunban.web.actions.audit):
-- every field an outcome has (empty group and member, code 0), plus action, count, role, via, client.
-- `who` is {role, via, client}.
local function emit_audit(outcomes_key, maxlen, action, count, info, who, now)
  local app = string.match(outcomes_key, '^{[^}]*:([^:{}]*)}') or ''
  redis.call('XADD', outcomes_key, 'MAXLEN', '~', maxlen, '*',
    'group_id', '', 'member', '', 'outcome', 'audit', 'code', 0, 'info', info,
    'attempts', 0, 'due_ms', now, 'at_ms', now, 'app', app,
    'action', action, 'count', count, 'role', who[1], 'via', who[2], 'client', who[3])
end

-- Trace records (imunban.trace; keys.py `t:trace:<shard>`): the last outcome of each request, kept at least the
-- trace TTL whatever the traffic since, so "was this member unbanned?" is one HGET. A record is
-- "L|at_ms|attempts|code|version|note|info": L the outcome's letter (TRACE_LETTER; '' while there is only a
-- note), when it ended, its attempts, ErrorCode, the version applied ('' for none), `note` the last
-- instruction ignored since as stale, "at_ms/its version/the version applied then" ('' for none), and the
-- ErrorInfo cut to TRACE_INFO_MAX bytes (the dead letter and the outcome stream keep it whole). The scripts that
-- end a request write it: ack (delivered, dead, group_gone), group_gone, cancel; enqueue, cancel and
-- reschedule note a stale instruction.
local TRACE_SHARD_HEX = 4    -- keys.TRACE_SHARD_HEX
local TRACE_INFO_MAX = 64
-- A shard drops its records older than the TTL at most once per this fraction of the TTL (when one is added).
local TRACE_PRUNE_EVERY = 8
local TRACE_LETTER = {delivered = 'd', dead = 'x', group_gone = 'g', cancelled = 'c'}

-- The shard holding `member`'s records of every group: KEYS "trace" (a prefix carrying the app's hash tag, so the
-- shard is in the script's slot) plus the first hex digits of SHA-1(member) (keys.Keys.trace_of, the twin).
local function trace_key(trace_prefix, member)
  return trace_prefix .. string.sub(redis.sha1hex(member), 1, TRACE_SHARD_HEX)
end

-- When a record was last written: its outcome's time or its note's, whichever is later.
local function trace_written_ms(record)
  local ended, noted = string.match(record, '^[^|]*|([^|]*)|[^|]*|[^|]*|[^|]*|([^/|]*)')
  return math.max(tonumber(ended) or 0, tonumber(noted) or 0)
end

-- Put `record` for request `rid` into its shard, which then lives `ttl_ms` after its newest record. Adding
-- a record also drops the shard's records older than the TTL, at most once per 1/TRACE_PRUNE_EVERY of it
-- (field '' holds when it last did): a shard holds what the TTL keeps plus at most that fraction more, at
-- O(1) per record on average.
local function trace_put(shard_key, ttl_ms, rid, record, now)
  local ttl = tonumber(ttl_ms)
  if redis.call('HSET', shard_key, rid, record) == 1 then
    local pruned = tonumber(redis.call('HGET', shard_key, ''))
    if not pruned or now - pruned >= ttl / TRACE_PRUNE_EVERY then
      if pruned then
        local all = redis.call('HGETALL', shard_key)
        for i = 1, #all, 2 do
          if all[i] ~= '' and trace_written_ms(all[i + 1]) < now - ttl then redis.call('HDEL', shard_key, all[i]) end
        end
      end
      redis.call('HSET', shard_key, '', now)
    end
  end
  redis.call('PEXPIRE', shard_key, ttl)
end

-- ErrorInfo cut to TRACE_INFO_MAX bytes on a character boundary (readers decode UTF-8): a multi-byte character
-- at the cut is dropped whole.
local function trace_info(info)
  if #info <= TRACE_INFO_MAX then return info end
  return (string.gsub(string.sub(info, 1, TRACE_INFO_MAX), '[\192-\255][\128-\191]*$', ''))
end

-- Request (group, member) ended with `outcome` (delivered, dead, group_gone, cancelled): its record says so, and
-- any note of an earlier ignored instruction goes (this outcome is newer).
local function trace_end(trace_prefix, ttl_ms, group, member, outcome, now, attempts, code, version, info)
  local record = string.format('%s|%d|%d|%s|%s||%s', TRACE_LETTER[outcome], now, attempts, code, version,
    trace_info(info or ''))
  trace_put(trace_key(trace_prefix, member), ttl_ms, group .. SEP .. member, record, now)
end

-- The trace record of request `rid` of `member` (nil for none): trace.lua reads it in the same step as the live state.
local function trace_get(trace_prefix, member, rid)
  local shard_key = trace_key(trace_prefix, member)
  return redis.call('HGET', shard_key, rid)
end

-- An instruction for (group, member) with version `ignored` was stale (admit_version said no): note it in the
-- request's record beside its outcome, with the version applied (read from `versions_key`) that superseded it.
local function trace_stale(trace_prefix, versions_key, ttl_ms, group, member, ignored, now)
  local rid = group .. SEP .. member
  local shard_key = trace_key(trace_prefix, member)
  local applied = redis.call('HGET', versions_key, rid) or ''
  local head, info
  local old = redis.call('HGET', shard_key, rid)
  if old then head, info = string.match(old, '^([^|]*|[^|]*|[^|]*|[^|]*|[^|]*)|[^|]*|(.*)$') end
  if not head then head, info = '||||', '' end
  trace_put(shard_key, ttl_ms, rid, string.format('%s|%d/%s/%s|%s', head, now, ignored, applied, info), now)
end

-- A full Redis (maxmemory, noeviction) must refuse intake and still drain. Redis 6.2, and 7 for a
-- script without flags, checks maxmemory only at a script's FIRST write, and only if that command
-- may grow memory (deny-oom); once a script has written, nothing stops it. So which command a
-- script writes first decides whether a full Redis refuses it.

-- Intake (enqueue, cancel, dead replay) calls this first: HINCRBY by 0 is a deny-oom write that
-- changes nothing, so a full Redis fails the script with OOM here, before anything is stored.
-- `moving`: the requests come from a message held in this same Redis (a Celery message on a broker
-- that shares it); storing and acknowledging it frees memory, so a full Redis lets it through
-- (Store.enqueue bounds how far past maxmemory).
local function refuse_if_full(stats_key, counter, moving)
  if moving then
    redis.call('HDEL', stats_key, '')  -- as proceed_when_full (below), on the stats hash
  else
    redis.call('HINCRBY', stats_key, counter, 0)
  end
end

-- Every other script (delivery, maintenance, holds, operators) calls this first, unconditionally,
-- with one of its keys: a write that cannot grow memory and that Redis does not check (HDEL of a
-- field that never exists, ZREM of a member that never exists, GETEX without options, LTRIM 0 -1),
-- so the rest of the script runs at maxmemory. Draining the backlog is what frees memory, a hold must
-- be recorded and lifted, and what these write is bounded (tests/redis/test_lua_contracts.py checks
-- that every script starts this way).
local function proceed_when_full(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'zset' then
    redis.call('ZREM', key, '')
  elseif kind == 'string' then
    redis.call('GETEX', key)
  elseif kind == 'list' then
    redis.call('LTRIM', key, 0, -1)
  else
    redis.call('HDEL', key, '')  -- a hash, or no key yet (then nothing is created)
  end
end

-- Delivery scripts that run at maxmemory (ack, group_gone) call this BEFORE proceed_when_full, their first write:
-- whether Redis has room for trace records. HINCRBY by 0 is a deny-oom write that changes nothing; on a full Redis
-- it fails (caught here, so the script has still written nothing and proceed_when_full then lets it drain), and the
-- script writes no record (it would grow the memory the drain is there to free) and counts the outcomes as
-- `untraced`.
local function has_room(stats_key, counter)
  return type(redis.pcall('HINCRBY', stats_key, counter, 0)) == 'number'
end

-- The earliest time the next probe of a hold may go: the last probe (or the answer that set the
-- hold) plus the hold's minimum interval (70050: 60 s), 0 without one. A hold written before the last
-- probe was recorded keeps its planned next probe. (imunban.hold.HoldState.probe_allowed_ms is the twin.)
local function probe_floor(next_probe, last, min_probe)
  if not min_probe or min_probe <= 0 then return 0 end
  if last then return last + min_probe end
  return next_probe or 0
end

-- Versions (docs/semantics.md, "Order between producers"). A version is a decimal integer in int64 range, as
-- text: compared as text (length first) because a Lua number loses precision above 2^53.
-- Returns -1, 0 or 1.
local function compare_versions(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

-- Whether an instruction for request `rid` with `version` ('' = none) applies, given the version
-- stored for it in `versions_key` ("<version>" or "<version>c" when a cancel applied it). Lower than
-- the stored one: ignored. Equal: applied (an idempotent re-send), except that an enqueue never
-- overrides a cancel of the same version (the safe instruction wins a tie). No version: applied
-- (arrival order), and the stored version stays. When it applies, records the version and whether
-- the request ended (`ends`: a cancel) or lives again (an enqueue) in `ends_key`, which remembers
-- only ended requests, for forget_versions.lua. Returns true when the instruction applies.
local function admit_version(versions_key, ends_key, rid, version, ends, now)
  local stored = redis.call('HGET', versions_key, rid)
  if stored and version ~= '' then
    local sv, by_cancel = string.match(stored, '^(%d+)(c?)$')
    local cmp = compare_versions(version, sv)
    if cmp < 0 or (cmp == 0 and by_cancel == 'c' and not ends) then return false end
  end
  if version ~= '' then
    redis.call('HSET', versions_key, rid, ends and version .. 'c' or version)
  elseif not stored then
    return true  -- unversioned and never versioned: nothing to remember (no memory per request)
  end
  if ends then
    redis.call('ZADD', ends_key, now, rid)
  else
    redis.call('ZREM', ends_key, rid)
  end
  return true
end

-- A request ended (delivered, dead, group gone): if it carries a version, start forgetting it.
-- Returns the version applied to it, as text ('' for none; a Lua number loses int64 precision).
local function version_ended(versions_key, ends_key, rid, now)
  local stored = redis.call('HGET', versions_key, rid)
  if not stored then return '' end
  redis.call('ZADD', ends_key, now, rid)
  return string.match(stored, '^(%d*)')
end

-- Replies of non-idempotent scripts, kept for a replayed call (redis-py's Retry re-sends a script
-- after a connection error though the first send may have run). A reply is a flat list of integers
-- and strings, stored as "n<int>" / "s<text>" items each followed by SEP (ids never contain SEP).
local function reply_get(replies_key, id)
  local raw = redis.call('HGET', replies_key, id)
  if not raw then return nil end
  local out = {}
  for item in string.gmatch(raw, '([^\031]*)\031') do
    if string.sub(item, 1, 1) == 'n' then
      out[#out + 1] = tonumber(string.sub(item, 2))
    else
      out[#out + 1] = string.sub(item, 2)
    end
  end
  return out
end

-- Keep `out` as the reply of call `id` for `ttl_ms`, and forget a few expired replies (each call
-- forgets up to 4 and adds 1, so the memory stays bounded by the calls of one ttl).
local function reply_put(replies_key, expiry_key, id, out, ttl_ms, now)
  local parts = {}
  for i, v in ipairs(out) do
    if type(v) == 'number' then parts[i] = string.format('n%d', v) else parts[i] = 's' .. v end
    parts[i] = parts[i] .. SEP
  end
  redis.call('HSET', replies_key, id, table.concat(parts))
  redis.call('ZADD', expiry_key, now + tonumber(ttl_ms), id)
  local old = redis.call('ZRANGE', expiry_key, '-inf', now, 'BYSCORE', 'LIMIT', 0, 4)
  if #old > 0 then
    redis.call('HDEL', replies_key, unpack(old))
    redis.call('ZREM', expiry_key, unpack(old))
  end
end
