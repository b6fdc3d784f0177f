-- claim: take this logical database for one `imunban demo` run, if nobody else uses it.
-- KEYS[1] marker (persistent: "a demo database")   KEYS[2] lease (expires unless the demo refreshes it)
-- ARGV[1] the run's token   ARGV[2] lease ms
-- An empty database is taken. So is one a killed demo left behind (marker set, lease run out): it
-- is emptied first. Anything else belongs to someone and is not touched. Returns 1 when taken.
local K_MARKER, K_LEASE = KEYS[1], KEYS[2]
if redis.call('DBSIZE') > 0 then
  if redis.call('EXISTS', K_MARKER) == 0 or redis.call('EXISTS', K_LEASE) == 1 then
    return 0
  end
  redis.call('FLUSHDB')
end
redis.call('SET', K_MARKER, ARGV[1])
redis.call('SET', K_LEASE, ARGV[1], 'PX', ARGV[2])
return 1
