-- migrate: move keys of the single-app layout (`prefix:name`) to their names under one app
-- (`{prefix:app}:name`), one pair at a time (imunban.migrate). A new name still free: RENAME (exact). A
-- new name that holds data already (a producer of the new layout wrote first) is merged, never
-- overwritten, by the pair's mode:
--   keep      the new key wins; the old one is deleted
--   min / nx  sorted set: ZADD LT (the earlier time) / NX (the new score wins)
--   nx / sum  hash: HSETNX (the new value wins) / integers added up (HINCRBY), anything else HSETNX
--   version   the versions hash: the higher version wins, a cancel wins a tie (`200c` beats `200`); every
--             request both layouts versioned whose merged version is a cancel, or that the old layout won,
--             is returned for imunban.migrate to settle (a cancel ends a stale pending copy; a higher old
--             version brings back its own due time)
--   ready / sched   a group's ready or scheduled set. Pairs of one group come together, ready then sched,
--             so each sees the other's new key: a member the new layout holds pending (in either set)
--             keeps the new layout's copy, the old copy is dropped and counted off the summed gauge
--             (`ready` or `scheduled` in stats): the gauges stay equal to the sets. Such collisions are
--             returned (the old copy's score) for imunban.migrate to settle by version.
-- KEYS[1] stats (the app's, of the new layout: the gauges corrected for members both layouts held)
-- KEYS[2..1+2n] per moved key, in the order of ARGV's modes: old name, new name
-- ARGV[1..n] the merge mode of each pair
-- Returns {renamed, merged, group keys among them, {rid, merged version, 1 if the old layout won else 0, ...},
-- {pair index, member, old score, ...}}.
local K_STATS = KEYS[1]
proceed_when_full(K_STATS)  -- first write: a worker starting on a full Redis still moves the old layout
local renamed, merged, group_keys = 0, 0, 0
local decided, collisions = {}, {}

local function merge_zset(old, new, mode)
  local flag = mode == 'min' and 'LT' or 'NX'
  local items = redis.call('ZRANGE', old, 0, -1, 'WITHSCORES')
  for j = 1, #items, 2 do redis.call('ZADD', new, flag, items[j + 1], items[j]) end
end

local function merge_hash(old, new, mode)
  local items = redis.call('HGETALL', old)
  for j = 1, #items, 2 do
    if mode == 'sum' and tonumber(items[j + 1]) and not string.find(items[j + 1], '[.eE]') then
      redis.call('HINCRBY', new, items[j], items[j + 1])
    else
      redis.call('HSETNX', new, items[j], items[j + 1])
    end
  end
end

-- The higher version wins; a cancel wins a tie (compare_versions: _lib.lua).
local function merge_versions(old, new)
  local items = redis.call('HGETALL', old)
  for j = 1, #items, 2 do
    local rid, ov = items[j], items[j + 1]
    local nv = redis.call('HGET', new, rid)
    if not nv then
      redis.call('HSET', new, rid, ov)
    else
      local on, oc = string.match(ov, '^(%d+)(c?)$')
      local nn, nc = string.match(nv, '^(%d+)(c?)$')
      local cmp = compare_versions(on, nn)
      local old_wins = cmp > 0 or (cmp == 0 and oc == 'c' and nc ~= 'c')
      if old_wins then redis.call('HSET', new, rid, ov) end
      local final = old_wins and ov or nv
      if old_wins or string.sub(final, -1) == 'c' then
        decided[#decided + 1] = rid
        decided[#decided + 1] = final
        decided[#decided + 1] = old_wins and 1 or 0
      end
    end
  end
end

-- A group's ready or scheduled set; `sibling` is the group's other set in the new layout.
local function merge_group_set(pair, old, new, sibling, gauge)
  if redis.call('EXISTS', new) == 0 and redis.call('EXISTS', sibling) == 0 then
    redis.call('RENAME', old, new)
    return false
  end
  local items = redis.call('ZRANGE', old, 0, -1, 'WITHSCORES')
  local dropped = 0
  for j = 1, #items, 2 do
    local member = items[j]
    if redis.call('ZSCORE', new, member) or redis.call('ZSCORE', sibling, member) then
      dropped = dropped + 1
      collisions[#collisions + 1] = pair
      collisions[#collisions + 1] = member
      collisions[#collisions + 1] = items[j + 1]
    else
      redis.call('ZADD', new, items[j + 1], member)
    end
  end
  redis.call('DEL', old)
  if dropped > 0 then redis.call('HINCRBY', K_STATS, gauge, -dropped) end
  return true
end

for i = 1, #ARGV do
  local old, new = moved_keys(1, i)
  local mode = ARGV[i]
  local kind = redis.call('TYPE', old)['ok']
  if kind ~= 'none' then
    local was_merged
    if mode == 'ready' or mode == 'sched' then
      group_keys = group_keys + 1
      local other = mode == 'ready' and i + 1 or i - 1
      local _, sibling = moved_keys(1, other)
      was_merged = merge_group_set(i, old, new, sibling, mode == 'ready' and 'ready' or 'scheduled')
    elseif redis.call('EXISTS', new) == 0 then
      redis.call('RENAME', old, new)
      was_merged = false
    else
      if mode == 'version' and kind == 'hash' then
        merge_versions(old, new)
      elseif mode ~= 'keep' and kind == 'zset' then
        merge_zset(old, new, mode)
      elseif mode ~= 'keep' and kind == 'hash' then
        merge_hash(old, new, mode)
      end
      redis.call('DEL', old)
      was_merged = true
    end
    if was_merged then merged = merged + 1 else renamed = renamed + 1 end
  end
end
return {renamed, merged, group_keys, decided, collisions}
