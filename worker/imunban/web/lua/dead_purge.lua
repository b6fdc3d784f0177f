-- dead_purge: delete the given dead letters (their set entry and their info together).
-- KEYS[1] dead   KEYS[2] dead_info   ARGV request ids   Returns how many were dead letters.
local purged = 0
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then purged = purged + 1 end
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return purged
