-- mutex_release: give the restore mutex back if this holder still has it (it may have expired and been
-- taken by another); deletes only, so a full Redis runs it.
-- KEYS[1] the mutex (STRING)   ARGV[1] this holder's token
-- Returns 1 if released, 0 if it was no longer this holder's.
local K_MUTEX = KEYS[1]
if redis.call('GET', K_MUTEX) ~= ARGV[1] then return 0 end
return redis.call('DEL', K_MUTEX)
