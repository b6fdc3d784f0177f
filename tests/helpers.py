"""Helpers shared by the tests (``from helpers import ...``: pytest puts tests/ on the path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from imunban.batch import Batch
from imunban.cli import main
from imunban.connection import server_time_ms
from imunban.deployment import Deployment, open_deployment
from imunban.keys import DEFAULT_APP, Keys
from imunban.settings import LingerPolicy, Settings
from imunban.store import Store
from imunban.validation import UnbanRequest

#: The key prefix every storage-layer test uses.
KEYS = Keys("t")

server_ms = server_time_ms


def wait_for(
    predicate: Callable[[], object],
    timeout_s: float,
    *,
    poll_s: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
) -> bool:
    """Poll ``predicate`` until it is truthy; False if it is still falsy after ``timeout_s`` seconds.

    An exception of a type in ``ignore`` (a server still starting, say) counts as "not yet"; the
    predicate is always asked once more at the deadline, so a slow poll cannot lose the last chance.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        last_chance = time.monotonic() >= deadline
        try:
            if predicate():
                return True
        except ignore:
            pass
        if last_chance:
            return False
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def wait_server_ms(r: redis.Redis, target_ms: int) -> None:
    """Wait until the Redis server's clock reaches ``target_ms`` (failing if it lags 10 s behind that)."""
    timeout_s = max(0, target_ms - server_ms(r)) / 1000 + 10
    assert wait_for(lambda: server_ms(r) >= target_ms, timeout_s, poll_s=0.002), f"server clock not at {target_ms}"


def req(group: str, *members: str, at_ms: int | None = None, high: bool = False) -> UnbanRequest:
    return UnbanRequest(group, tuple(members), at_ms, "high" if high else "normal")


def true_ready(r: redis.Redis) -> int:
    """The ready count recomputed from scratch: the sum of ZCARD over every ready:* key."""
    return sum(int(r.zcard(key)) for key in r.scan_iter(match=KEYS.ready("*"), count=1_000))


def assert_gauge(r: redis.Redis) -> None:
    """The ``ready`` and ``scheduled`` gauges the scripts maintain equal the true counts; schedidx is exact."""
    assert int(r.hget(KEYS.stats, "ready") or 0) == true_ready(r)
    assert int(r.hget(KEYS.stats, "scheduled") or 0) == true_scheduled(r)
    assert_sched_index(r)


def true_scheduled(r: redis.Redis) -> int:
    """The scheduled count recomputed from scratch: the sum of ZCARD over every sched:{group} key."""
    return sum(int(r.zcard(key)) for key in r.scan_iter(match=KEYS.sched_group("*"), count=1_000))


def assert_sched_index(r: redis.Redis) -> None:
    """schedidx holds exactly the non-empty sched:{group} sets, each scored with its earliest due."""
    prefix = KEYS.sched_group("")
    expected = {}
    for key in r.scan_iter(match=KEYS.sched_group("*"), count=1_000):
        head = r.zrange(key, 0, 0, withscores=True)
        if head:
            expected[key[len(prefix) :]] = head[0][1]
    assert dict(r.zrange(KEYS.schedidx, 0, -1, withscores=True)) == expected


def run_in_threads(target: Callable[[], object], count: int) -> None:
    """Start ``count`` threads running ``target`` and wait for all of them."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def metric_samples(scrape: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus scrape, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape)
        for s in family.samples
    }


def metric_value(scrape: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels`` (0 when none), e.g. over every ``app``."""
    wanted, names = set(labels.items()), set(labels) - {"app"}
    return sum(
        value
        for (sample, sample_labels), value in metric_samples(scrape).items()
        if sample == name and wanted <= set(sample_labels) and set(dict(sample_labels)) - {"app"} == names
    )


def deployment_on(client: redis.Redis, keys: Keys | None = None, **settings: Any) -> Deployment:
    """The one-app deployment of ``keys`` (app ``default`` under its prefix) on ``client``; ``settings`` override."""
    keys = keys or Keys()
    assert keys.app == DEFAULT_APP, "a one-app deployment's app is 'default'"
    return open_deployment(Settings(key_prefix=keys.prefix, **settings), client=client)


def set_maxmemory(r: redis.Redis, headroom: int) -> int:
    """Set ``maxmemory`` to ``headroom`` bytes above what Redis uses now; returns the limit."""
    limit = int(r.info("memory")["used_memory"]) + headroom
    r.config_set("maxmemory", limit)
    return limit


def fill_redis(r: redis.Redis, headroom: int = 256 * 1024) -> int:
    """Make Redis full: a limit ``headroom`` above use, then plain SETs until Redis refuses one; returns the limit.

    The filler keys are ``filler:*`` (count them to check nothing was evicted).
    """
    limit = set_maxmemory(r, headroom)
    for i in range(headroom // 100):  # 1 KB values: the limit is reached well within this many
        try:
            r.set(f"filler:{i}", "x" * 1000)
        except redis.exceptions.OutOfMemoryError:
            return limit
    raise AssertionError(f"Redis never refused a write under maxmemory {limit}")


def overfill_redis(r: redis.Redis, over: int = 64 * 1024) -> int:
    """Make Redis full for certain: :func:`fill_redis`, then a limit ``over`` bytes below use; returns it.

    Just filled, Redis is only a few bytes over its limit, and a client buffer freed meanwhile can
    take it back under: a test that must meet a full Redis uses this.
    """
    fill_redis(r)
    limit = int(r.info("memory")["used_memory"]) - over
    r.config_set("maxmemory", limit)
    return limit


#: ``cli("enqueue", "g", "a")`` -> (exit status, stdout, stderr)
Run = Callable[..., tuple[int, str, str]]


def cli_runner(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``imunban ARGS`` in-process and capture its output; argparse's exits become the status."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            rc = main(list(args))
        except SystemExit as exc:  # argparse usage errors, --help
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def end_as(
    r: redis.Redis, group: str, member: str, outcome: str, code: int = 0, info: str = "", *, keys: Keys = KEYS
) -> None:
    """Enqueue, claim and acknowledge one request with ``outcome`` (what a worker would do)."""
    store = Store(r, keys, linger=LingerPolicy(0))
    store.enqueue([UnbanRequest(group, (member,))])
    batch = store.claim(group)
    assert isinstance(batch, Batch)
    store.ack(batch, outcome, code=code, info=info)
