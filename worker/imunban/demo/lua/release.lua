-- release: empty the demo's database at the end of its run, if the run still holds it.
-- KEYS[1] lease   ARGV[1] the run's token. Returns 1 when emptied.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('FLUSHDB')
  return 1
end
return 0
