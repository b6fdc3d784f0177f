-- hold_probe: while held, let exactly one caller at a time probe the API, with exponential backoff,
-- and choose the group it probes: probes rotate across the waiting groups, so one group that keeps
-- failing (a transient or unknown answer) cannot stand in front of every probe. A probe never goes
-- earlier than the last one plus the hold's minimum interval (70050), whoever moved next_probe_ms.
-- KEYS[1] groups   KEYS[2] hold   HASH code, info, since_ms, next_probe_ms, probes, min_probe_ms, last_probe_ms
-- KEYS[3] probed   HASH group -> number of its latest probe in this hold (the hold's `probes` then)
-- ARGV[1] base delay ms   ARGV[2] cap ms   ARGV[3] how many of the first waiting groups to choose from
-- Returns 0 when there is no hold, -1 when it is not time to probe yet, -2 when no group is waiting
-- (the turn is kept for when one arrives); else the id of the group to probe: of the first ARGV[3]
-- groups of the index (lingering ones too: a probe need not wait for a batch to fill), the one
-- probed longest ago, never-probed groups first, ties to the oldest.
local K_GROUPS, K_HOLD, K_PROBED = KEYS[1], KEYS[2], KEYS[3]
proceed_when_full(K_HOLD)  -- first write: a hold is probed and lifted on a full Redis (see _lib.lua)
if redis.call('EXISTS', K_HOLD) == 0 then return 0 end
local now = now_ms()
local next_probe, last, min_probe = unpack(redis.call('HMGET', K_HOLD, 'next_probe_ms', 'last_probe_ms',
  'min_probe_ms'))
min_probe = tonumber(min_probe) or 0
local due = probe_floor(tonumber(next_probe), tonumber(last), min_probe)
if now < math.max(tonumber(next_probe) or 0, due) then return -1 end
local waiting = redis.call('ZRANGE', K_GROUPS, 0, math.max(1, tonumber(ARGV[3])) - 1)
if #waiting == 0 then return -2 end
-- Probe numbers, not times, order the groups: two probes within one millisecond still rotate.
local pick, pick_at = nil, nil
for _, group in ipairs(waiting) do
  local at = tonumber(redis.call('HGET', K_PROBED, group) or 0)
  if pick_at == nil or at < pick_at then pick, pick_at = group, at end
end
local probes = redis.call('HINCRBY', K_HOLD, 'probes', 1)
redis.call('HSET', K_PROBED, pick, probes)
local delay = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) * 2 ^ math.min(probes, 30))
delay = math.max(delay, min_probe)
redis.call('HSET', K_HOLD, 'next_probe_ms', now + delay, 'last_probe_ms', now)
return pick
