"""Script calls on a Redis Cluster: one pipeline per node, WAIT on the node that took the writes, redirects retried.

redis-py's cluster pipeline refuses EVALSHA, and one call at a time costs a round trip per call
(bulk intake ran at a fraction of a single Redis). Here the calls are grouped by the node that
serves their slot (all KEYS of one call belong to one app: one hash tag, one slot) and each group
is sent as a plain pipeline on that node's own client, ended by ``WAIT`` when durable: WAIT counts
the replicas that acknowledged *this connection's* writes on *that* node, which is the node that
took them.

A call the node does not serve comes back in place and is sent again, never half-applied (Redis
checks a script's keys before it runs a line of it):

- ``MOVED`` (a failover or a finished reshard): the slot map is patched and the call goes to the new owner;
- ``ASK`` (its slot is being migrated and its keys have left): the next attempt goes to the
  importing node, preceded by ``ASKING``;
- ``TRYAGAIN`` (mid-migration, some keys here and some there), ``CLUSTERDOWN``, ``READONLY`` (a
  demoted master), a connection error (a dead master): after a bounded backoff
  (:func:`retry_delay_s`), with the slot map read again for the last three;
- ``NOSCRIPT`` (a promoted replica, a restart): the script is loaded on that node.

Sending a call again is safe because every script is idempotent (see :mod:`imunban.pipelines`).
Past the budget the last error reaches the caller (a StoreError once translated): the producer
re-sends, the pump tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script

from imunban.errors import DurabilityError
from imunban.settings import Durability

#: (script, KEYS, ARGV) of one call.
ScriptCall = tuple[Script, Sequence[str], Sequence[str | int]]
#: How long calls keep being re-sent while their slot moves or its master fails over (the cluster
#: notices a dead master after cluster-node-timeout, 15 s by default, then elects its replica).
REDIRECT_BUDGET_S = 20.0
#: Backoff between rounds that wait (TRYAGAIN, CLUSTERDOWN, a dead node): from this, doubling, up to the cap.
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 1.0
#: Rounds at most, also when none waits (a MOVED/ASK ping-pong must end).
MAX_ROUNDS = 200

_PENDING = object()
#: Replies after which the call is retried once the slot map is read again.
_REFRESH = (redis.exceptions.ClusterDownError, redis.exceptions.ReadOnlyError)


def retry_delay_s(
    round_: int,
    elapsed_s: float,
    *,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
    budget_s: float = REDIRECT_BUDGET_S,
) -> float | None:
    """Seconds to wait before retry round ``round_`` (1 = the first retry), or None once ``budget_s`` is spent."""
    if round_ < 1:
        raise ValueError("round_ counts retries from 1")
    left_s = budget_s - elapsed_s
    if left_s <= 0:
        return None
    return min(cap_s, base_s * 2.0 ** min(round_ - 1, 30), left_s)


def confirm_replicas(reply: Any, durability: Durability, operation: str) -> None:
    """Raise DurabilityError unless the WAIT ``reply`` counts ``durability.replicas`` replicas."""
    if isinstance(reply, Exception):
        raise DurabilityError(f"redis: {operation}: WAIT failed: {reply}") from reply
    confirmed = int(reply)
    if confirmed < durability.replicas:
        raise DurabilityError(
            f"redis: {operation}: the primary stored it, but only {confirmed} of {durability.replicas} replica(s) "
            f"confirmed within {durability.timeout_ms} ms (IMUNBAN_DURABLE_REPLICAS); the request may or "
            "may not be stored: re-sending it is safe"
        )


@dataclass
class _Round:
    """What one round of per-node pipelines left to do."""

    #: Call index -> the node to send it to next, after ASKING.
    ask: dict[int, ClusterNode] = field(default_factory=dict)
    wait: bool = False
    refresh: bool = False
    last_error: Exception | None = None

    def retry(self, error: Exception, *, wait: bool = False, refresh: bool = False) -> None:
        self.last_error = error
        self.wait |= wait
        self.refresh |= refresh


def run_on_cluster(
    cluster: RedisCluster,
    calls: Sequence[ScriptCall],
    *,
    operation: str,
    durability: Durability | None = None,
    raise_on_error: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Any]:
    """EVALSHA every call in one pipeline per node (WAIT at its end if durable); redirects retried. Returns replies.

    With ``raise_on_error=False`` a call's own error reply (e.g. OOM) comes back in its place; with
    True the first one is raised. Redirects and NOSCRIPT never come back: they are handled here.
    """
    replies: list[Any] = [_PENDING] * len(calls)
    ask: dict[int, ClusterNode] = {}
    started = clock()
    for round_ in range(1, MAX_ROUNDS + 1):
        todo = [i for i, reply in enumerate(replies) if reply is _PENDING]
        if not todo:
            break
        outcome = _Round()
        for node, indexes in _by_node(cluster, calls, todo, ask).items():
            _send(cluster, node, indexes, calls, replies, ask, durability, operation, outcome)
        ask = outcome.ask
        if all(reply is not _PENDING for reply in replies):
            break
        delay = retry_delay_s(round_, clock() - started) if outcome.wait else 0.0
        if delay is None or round_ == MAX_ROUNDS:
            assert outcome.last_error is not None
            raise outcome.last_error
        if outcome.refresh:
            cluster.nodes_manager.initialize()
        if delay:
            sleep(delay)
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies


def _by_node(
    cluster: RedisCluster, calls: Sequence[ScriptCall], todo: list[int], ask: dict[int, ClusterNode]
) -> dict[ClusterNode, list[int]]:
    """The calls to send, by the node to send them to: the ASK target if any, else their slot's master."""
    groups: dict[ClusterNode, list[int]] = {}
    for i in todo:
        keys = calls[i][1]
        node = ask.get(i) or cluster.get_node_from_key(keys[0])  # type: ignore[no-untyped-call]
        groups.setdefault(node, []).append(i)
    return groups


def _send(
    cluster: RedisCluster,
    node: ClusterNode,
    indexes: list[int],
    calls: Sequence[ScriptCall],
    replies: list[Any],
    ask: dict[int, ClusterNode],
    durability: Durability | None,
    operation: str,
    outcome: _Round,
) -> None:
    """One pipeline of ``indexes`` on ``node``; each reply stored in place or the call left for the next round."""
    replicas = durability.replicas if durability is not None else 0
    client: redis.Redis = cluster.get_redis_connection(node)
    pipe = client.pipeline(transaction=False)
    for i in indexes:
        script, keys, args = calls[i]
        if i in ask:
            # Lets the importing node serve the next command once.
            pipe.execute_command("ASKING")  # type: ignore[no-untyped-call]
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    if replicas:
        assert durability is not None
        pipe.wait(replicas, durability.timeout_ms)
    try:
        out: list[Any] = pipe.execute(raise_on_error=False)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        # A dead or restarting master: the whole group again once the cluster names its successor.
        outcome.retry(exc, wait=True, refresh=True)
        return
    wait_reply = out.pop() if replicas else None
    wrote = False
    position = 0
    for i in indexes:
        if i in ask:
            position += 1  # ASKING's own OK
        reply = out[position]
        position += 1
        if not isinstance(reply, redis.exceptions.ResponseError) or not _handled(
            cluster, client, calls[i][0], reply, i, outcome
        ):
            replies[i] = reply
            wrote |= not isinstance(reply, Exception)
    if wrote and durability is not None and replicas:
        confirm_replicas(wait_reply, durability, operation)


def _handled(
    cluster: RedisCluster, client: redis.Redis, script: Script, reply: Exception, index: int, outcome: _Round
) -> bool:
    """Whether ``reply`` is a redirect or a missing script, arranged for the next round (the call left pending)."""
    if isinstance(reply, redis.exceptions.NoScriptError):
        script.sha = client.script_load(script.script)  # this node's cache: a promoted replica, a restart
        outcome.retry(reply)
    elif isinstance(reply, redis.exceptions.MovedError):  # before AskError: MovedError is one
        cluster.nodes_manager.move_slot(reply)
        outcome.retry(reply)
    elif isinstance(reply, redis.exceptions.AskError):
        target = cluster.get_node(host=reply.host, port=reply.port)  # type: ignore[no-untyped-call]
        if target is None:
            outcome.retry(reply, refresh=True)  # a node the client has not met yet: read the map
        else:
            outcome.ask[index] = target
            outcome.retry(reply)
    elif isinstance(reply, redis.exceptions.TryAgainError):
        outcome.retry(reply, wait=True)
    elif isinstance(reply, _REFRESH):
        outcome.retry(reply, wait=True, refresh=True)
    else:
        return False
    return True
