-- mutex_acquire: take kombu's restore mutex (the same key and SET NX PX as redis-py's lock, so stock
-- kombu consumers and ours exclude each other), also on a full Redis, where a plain SET is refused and
-- a consumer starting then stopped at once. GETEX goes first: a write that cannot grow memory, so
-- Redis lets the script through (it checks only a script's first write).
-- KEYS[1] the mutex (STRING)   ARGV[1] this holder's token   ARGV[2] how long it is held at most, ms
-- Returns 1 if taken, 0 if someone else holds it.
local K_MUTEX = KEYS[1]
redis.call('GETEX', K_MUTEX)
if redis.call('SET', K_MUTEX, ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
