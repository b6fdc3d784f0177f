-- dead_purge: delete the given dead letters (their set entry and their info together). Purging frees
-- memory, so it must work on a full Redis (see dead_clear.lua).
-- KEYS[1] dead   KEYS[2] dead_info
-- ARGV[1..n] request ids
-- Returns how many were dead letters.
local K_DEAD, K_DEAD_INFO = KEYS[1], KEYS[2]
proceed_when_full(K_DEAD)  -- first write (see _lib.lua)
local purged = 0
for i = 1, #ARGV do
  if redis.call('ZREM', K_DEAD, ARGV[i]) == 1 then purged = purged + 1 end
  redis.call('HDEL', K_DEAD_INFO, ARGV[i])
end
return purged
