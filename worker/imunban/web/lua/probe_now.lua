-- probe_now: while delivery is held, make the next probe due at once (the pump sends it next tick,
-- through the normal probe path: hold_probe.lua picks the group and sets the next backoff).
-- KEYS[1] hold (HASH)   Returns 1 if held (next_probe_ms set to now), 0 if there is no hold.
-- HDEL of a field that never exists goes first: a write that cannot grow memory, so Redis lets the
-- script through at maxmemory (it checks only a script's first write): a hold is probed on a full Redis.
redis.call('HDEL', KEYS[1], '')
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'next_probe_ms', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return 1
