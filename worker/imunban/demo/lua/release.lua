-- release: empty the demo's database at the end of its run, if the run still holds it.
-- KEYS[1] lease   ARGV[1] the run's token. Returns 1 when emptied.
local K_LEASE = KEYS[1]
if redis.call('GET', K_LEASE) == ARGV[1] then
  redis.call('FLUSHDB')
  return 1
end
return 0
