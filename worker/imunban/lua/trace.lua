-- trace: where one request is now and its trace record, read in one step (claim, ack and promote move it
-- between these keys atomically, so reads spread over several steps could miss it in flight). A script rather
-- than MULTI: at maxmemory Redis refuses every command queued inside MULTI, reads too, and this script only reads.
-- KEYS[1] stats   KEYS[2] high   KEYS[3] meta   KEYS[4] inflight   KEYS[5] leases   KEYS[6] versions
-- KEYS[7] trace (shard prefix)   KEYS[8] dead   KEYS[9] dead_info   KEYS[10] ready:{group}   KEYS[11] sched:{group}
-- ARGV[1] member   ARGV[2] request id (group SEP member)
-- Returns {ready score, sched score, inflight deadline, lease, dead score, dead info, meta, high (0/1),
-- version, trace record, untraced count}; an absent one is nil.
local K_STATS, K_HIGH, K_META, K_INFLIGHT, K_LEASES = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_VERSIONS, K_TRACE, K_DEAD, K_DEAD_INFO = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_READY, K_SCHED = KEYS[10], KEYS[11]
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
  trace_get(K_TRACE, member, rid),
  redis.call('HGET', K_STATS, 'untraced'),
}
