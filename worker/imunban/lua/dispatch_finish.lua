-- dispatch_finish: a delivery task is done with its slot; the group may be dispatched again at once.
-- KEYS[1] dispatch   ZSET "group SEP slot" -> ms the marker expires
-- KEYS[2] wake       LIST tokens that wake a waiting pump
-- ARGV[1] marker ("group SEP slot")
-- Wakes a pump: while work runs it sleeps until a slot frees (this) or something becomes due, instead
-- of looking again on a short timer. Returns 1 if the marker was removed, 0 if it had expired.
local K_DISPATCH, K_WAKE = KEYS[1], KEYS[2]
proceed_when_full(K_DISPATCH)  -- first write: delivery drains a full Redis (see _lib.lua)
local removed = redis.call('ZREM', K_DISPATCH, ARGV[1])
wake(K_WAKE)
return removed
