-- trace: where one request is now, read in one step (claim, ack and promote move it between these keys
-- atomically, so reads spread over several steps could miss it in flight). A script rather than MULTI:
-- at maxmemory Redis refuses every command queued inside MULTI, reads too, and this script only reads.
-- KEYS[1] high   KEYS[2] meta   KEYS[3] inflight   KEYS[4] leases   KEYS[5] versions   KEYS[6] dead
-- KEYS[7] dead_info   KEYS[8] ready:{group}   KEYS[9] sched:{group}
-- ARGV[1] member   ARGV[2] request id (group SEP member)
-- Returns {ready score, sched score, inflight deadline, lease, dead score, dead info, meta, high (0/1),
-- version}; an absent one is nil.
local K_HIGH, K_META, K_INFLIGHT, K_LEASES, K_VERSIONS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_DEAD, K_DEAD_INFO, K_READY, K_SCHED = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local member, rid = ARGV[1], ARGV[2]
return {
  redis.call('ZSCORE', K_READY, member),
  redis.call('ZSCORE', K_SCHED, member),
  redis.call('ZSCORE', K_INFLIGHT, rid),
  redis.call('HGET', K_LEASES, rid),
  redis.call('ZSCORE', K_DEAD, rid),
  redis.call('HGET', K_DEAD_INFO, rid),
  redis.call('HGET', K_META, rid),
  redis.call('HEXISTS', K_HIGH, rid),
  redis.call('HGET', K_VERSIONS, rid),
}
