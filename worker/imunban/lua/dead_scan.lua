-- dead_scan: dead letters matching a filter, newest first, scanning a bounded window (read-only).
-- KEYS[1] dead (ZSET request id -> ms dead-lettered)   KEYS[2] dead_info (HASH request id -> JSON)
-- ARGV[1] first rank to look at (0 = newest)   ARGV[2] most entries to look at in this call
-- ARGV[3] most matches to return   ARGV[4] ErrorCode to match, '' for any   ARGV[5] group id, '' for any
-- Returns {next rank to look at (-1: the end was reached), looked at, rid1, info1, rid2, info2, ...}.
-- The window keeps one call short however many dead letters there are: a page that finds fewer
-- matches than asked shows them with a "look further" link from the returned rank.
local K_DEAD, K_DEAD_INFO = KEYS[1], KEYS[2]
local start, budget, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local code, group = ARGV[4], ARGV[5]
local prefix = group .. SEP  -- SEP: _lib.lua
local out = {}
local rank, looked, found = start, 0, 0
local CHUNK = 500
while looked < budget and found < want do
  local n = math.min(CHUNK, budget - looked)
  local rids = redis.call('ZREVRANGE', K_DEAD, rank, rank + n - 1)
  if #rids == 0 then return {-1, looked, unpack(out)} end
  for i = 1, #rids do
    local rid = rids[i]
    rank = rank + 1
    looked = looked + 1
    if group == '' or string.sub(rid, 1, #prefix) == prefix then
      local info = redis.call('HGET', K_DEAD_INFO, rid) or '{}'
      local ok = code == ''
      if not ok then
        local decoded = cjson.decode(info)
        ok = tostring(decoded.code) == code
      end
      if ok then
        out[#out + 1] = rid
        out[#out + 1] = info
        found = found + 1
        if found >= want then break end
      end
    end
  end
  if #rids < n then
    if rank >= redis.call('ZCARD', K_DEAD) then return {-1, looked, unpack(out)} end
  end
end
return {rank, looked, unpack(out)}
