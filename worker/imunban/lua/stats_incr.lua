-- stats_incr: bump one counter of the stats hash (calls, rate-limited answers, ...).
-- A script rather than a plain HINCRBY so that delivery still counts when Redis is full: a plain
-- HINCRBY is refused at maxmemory, this one is not (see proceed_when_full in _lib.lua).
-- KEYS[1] stats   HASH counters
-- ARGV[1] counter name   ARGV[2] amount
-- Returns the counter's new value.
local K_STATS = KEYS[1]
proceed_when_full(K_STATS)
return redis.call('HINCRBY', K_STATS, ARGV[1], ARGV[2])
