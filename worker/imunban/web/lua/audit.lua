-- audit: append one audit entry (an operator's action) to the outcome stream, also on a full Redis.
-- An action that frees memory (purging dead letters) or lifts a hold must be recorded then too: XTRIM
-- goes first, a write that cannot grow memory, so Redis lets the script through at maxmemory (it checks
-- only a script's first write); the stream stays capped near ARGV[1] entries.
-- KEYS[1] outcomes (STREAM)   ARGV[1] the stream's max length (approximate)   ARGV[2..] field, value, ...
-- Returns the new entry's id.
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 2))
