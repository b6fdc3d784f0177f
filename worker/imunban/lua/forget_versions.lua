-- forget_versions: forget the versions of requests that ended longer ago than the version memory.
-- Only ended requests are listed in version_ends (a pending or in-flight request keeps its version).
-- KEYS[1] versions       HASH request id -> version applied
-- KEYS[2] version_ends   ZSET request id -> ms its versioned request ended
-- ARGV[1] the version memory, ms   ARGV[2] the most versions to forget in this call
-- Returns the number of versions forgotten.
local K_VERSIONS, K_VERSION_ENDS = KEYS[1], KEYS[2]
proceed_when_full(K_VERSIONS)  -- first write: maintenance runs on a full Redis (see _lib.lua)
local old = redis.call('ZRANGE', K_VERSION_ENDS, '-inf', now_ms() - tonumber(ARGV[1]), 'BYSCORE',
  'LIMIT', 0, tonumber(ARGV[2]))
if #old > 0 then
  redis.call('HDEL', K_VERSIONS, unpack(old))
  redis.call('ZREM', K_VERSION_ENDS, unpack(old))
end
return #old
