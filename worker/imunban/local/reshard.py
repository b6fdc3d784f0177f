"""Move one hash slot of a local Redis Cluster to another master, as ``redis-cli --cluster reshard`` does.

The steps (https://redis.io/docs/latest/commands/cluster-setslot/): the target is told the slot is
``IMPORTING`` from the source, the source that it is ``MIGRATING`` to the target; the slot's keys
go over in batches (``CLUSTER GETKEYSINSLOT`` + ``MIGRATE … KEYS``, each batch atomic); then
``SETSLOT … NODE`` names the new owner, on the target first, then the source, then the other
masters. Between the first and the last step a client gets ``ASK`` (keys gone to the target) or
``TRYAGAIN`` (a multi-key command whose keys are split, or not all there yet): imunban's scripts are
retried (:mod:`imunban.cluster_scripts`), never half-applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from imunban.local.redis_cluster import RedisCluster
from imunban.local.redis_server import RedisServer

#: How long one MIGRATE may take (ms): a batch of keys on loopback.
MIGRATE_TIMEOUT_MS = 5_000


@dataclass
class SlotMove:
    """What :func:`move_slot` did: the slot, its old and new master, keys moved and how long the slot was in flight."""

    slot: int
    source_port: int
    target_port: int
    keys: int = 0
    batches: int = 0
    migrating_s: float = 0.0


def move_slot(
    cluster: RedisCluster,
    slot: int,
    target: RedisServer,
    *,
    batch: int = 10,
    between_batches: Callable[[int], None] = lambda _: None,
) -> SlotMove:
    """Move ``slot`` to master ``target``, ``batch`` keys per MIGRATE; ``between_batches(n)`` runs after batch n.

    ``between_batches`` lets a drill or a test act (or wait) while the slot is half moved.
    """
    source = cluster.master_of_slot(slot)
    if source is target:
        raise ValueError(f"slot {slot} is already served by :{target.port}")
    move = SlotMove(slot, source.port, target.port)
    source_id, target_id = cluster.node_id(source), cluster.node_id(target)
    started = time.monotonic()
    with target.client() as dst, source.client() as src:
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        while True:
            keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, MIGRATE_TIMEOUT_MS, "KEYS", *keys)
            move.keys += len(keys)
            move.batches += 1
            between_batches(move.batches)
        dst.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        src.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
    for node in cluster.live:
        if node not in (source, target) and cluster.is_master(node):
            with node.client() as client:
                client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
    move.migrating_s = time.monotonic() - started
    return move
