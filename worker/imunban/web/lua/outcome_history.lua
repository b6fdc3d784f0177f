-- outcome_history (read-only): the newest outcome entries of one request among the last ARGV[3].
-- KEYS[1] outcomes (STREAM)   ARGV[1] group id   ARGV[2] member   ARGV[3] entries to look at
-- ARGV[4] most entries to return
-- Returns {id1, {field, value, ...}, id2, {...}, ...}, newest first. Filtering on the server keeps
-- a member lookup to one short reply however full the stream is.
local entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', tonumber(ARGV[3]))
local want = tonumber(ARGV[4])
local out = {}
for i = 1, #entries do
  local fields = entries[i][2]
  local g, m
  for j = 1, #fields, 2 do
    if fields[j] == 'group_id' then g = fields[j + 1] elseif fields[j] == 'member' then m = fields[j + 1] end
  end
  if g == ARGV[1] and m == ARGV[2] then
    out[#out + 1] = entries[i][1]
    out[#out + 1] = fields
    if #out >= 2 * want then break end
  end
end
return out
