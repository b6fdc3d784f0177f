-- limiter_reserve: GCRA on the Redis server clock; reserve the next call slot and say how long to wait.
-- With a lease check (ARGV[5] a token) it first keeps only the batch's members still leased to that
-- token (a cancel, a newer instruction or a reap removes or replaces the lease), renews their lease
-- deadlines, and reserves a slot only if one of them is live: one atomic step, no extra round trip.
-- The hold check rides here too: while delivery is held, no slot is taken (a probe passes); while an
-- operator paused delivery, no delivery run takes one (a probe neither).
-- Each reservation is counted into the pace (stats hash, see pace_count in _lib.lua), from which
-- reindex decides how long a partial batch lingers.
-- KEYS[1] stats      HASH counters; fields pace_us, pace, pace_interval_us, pace_booked_us (the pace)
-- KEYS[2] inflight   ZSET request id -> lease deadline ms
-- KEYS[3] leases     HASH request id -> "token|due_ms|high"
-- KEYS[4] hold       HASH present while delivery is held
-- KEYS[5] pause      HASH present while an operator paused delivery (checked with a lease check only)
-- KEYS[6] limiter:{sdkappid}   STRING theoretical arrival time (TAT), microseconds
-- ARGV[1] emission interval, microseconds (1e6 / calls per second)
-- ARGV[2] the longest wait a caller accepts, microseconds; a later slot is not reserved
-- ARGV[3] the furthest ahead of now a TAT can legitimately be, microseconds; one further ahead is
--         corrupt (the server clock stepped back: failover, NTP) and is reset to now
-- ARGV[4] lease_ms: a live member's new lease deadline is now + lease_ms
-- ARGV[5] lease token, or '' for no lease check   ARGV[6] group id
-- ARGV[7] '1' to reserve even while delivery is held (the hold's probe), else '0'
-- ARGV[8..] members
-- Returns {1, wait_us, slot_us, live member...} when a slot was reserved (sleep wait_us, then call the
-- live members); {0, wait_us, 0, live member...} when refused (too far ahead: nap, ask again);
-- {-1, 0, 0} when no member is live (no slot taken); {-2, 0, 0} while held or paused (no slot taken).
-- Without a lease check no member is listed.
-- slot_us is the reserved slot's start on the server clock (for tests and metrics).
local K_STATS, K_INFLIGHT, K_LEASES, K_HOLD = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_PAUSE, K_LIMITER = KEYS[5], KEYS[6]
proceed_when_full(K_LEASES)  -- first write: delivery goes on in a full Redis (see _lib.lua)
local now = now_us()
local token = ARGV[5]
if ARGV[7] ~= '1' and redis.call('EXISTS', K_HOLD) == 1 then return {-2, 0, 0} end
if token ~= '' and redis.call('EXISTS', K_PAUSE) == 1 then return {-2, 0, 0} end
local out = {1, 0, 0}
if token ~= '' then
  local group, deadline = ARGV[6], math.floor(now / 1000) + tonumber(ARGV[4])
  for i = 8, #ARGV do
    local rid = group .. SEP .. ARGV[i]
    local ltoken = parse_lease(redis.call('HGET', K_LEASES, rid), 0)
    if ltoken == token then
      -- Renewed on every ask: a long wait or a long bisection never lets a live lease lapse.
      redis.call('ZADD', K_INFLIGHT, deadline, rid)
      out[#out + 1] = ARGV[i]
    end
  end
  if #out == 3 then return {-1, 0, 0} end
end
local interval, max_wait, max_lead = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', K_LIMITER) or now)
-- Behind now: idle time is not banked. Beyond max_lead: waiting it out would stall every worker for
-- the size of a clock step, so the schedule restarts from now.
if tat < now or tat - now > max_lead then tat = now end
local wait = tat - now
if wait > max_wait then
  out[1], out[2] = 0, wait
  return out
end
pace_count(K_STATS, now, interval, tat + interval)
-- The key only matters while the schedule is ahead of now; let an idle limiter expire.
redis.call('SET', K_LIMITER, string.format('%d', tat + interval), 'PX', math.floor((wait + interval) / 1000) + 1000)
out[2], out[3] = wait, tat
return out
