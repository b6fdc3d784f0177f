"""Redis Sentinel end to end: the failover drill, and the bad cases, on a loopback rig of real processes.

The rig (imunban.local.sentinel) is 1 primary, 2 replicas and 3 sentinels, AOF on, each started and
stopped by its pid. The drill (imunban.local.drill) SIGKILLs the primary while workers deliver and a
durable producer enqueues.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.exceptions import Reject

from imunban.cli import main
from imunban.connection import connect
from imunban.deployment import open_deployment
from imunban.errors import ConfigError, DurabilityError
from imunban.local.drill import DrillConfig, run_drill
from imunban.local.redis_server import free_port
from imunban.local.sentinel import SentinelRig
from imunban.producer import Producer
from imunban.runtime import prepare_worker
from imunban.settings import Settings
from imunban_celery.app import create_celery
from imunban_celery.unban import unban

PASSWORD = "primary-pw"
SENTINEL_PASSWORD = "sentinel-pw"
CREDENTIALS = {"IMUNBAN_SDKAPPID": "1400000000", "IMUNBAN_SECRET_KEY": "k", "IMUNBAN_BASE_URL": "http://127.0.0.1:1"}


#: The issue's bound: every worker delivers again within this of each promotion, with no restart.
RESUME_S = 2.0


@pytest.mark.timeout(240)
def test_three_failovers_lose_no_acknowledged_request_and_no_worker_stalls(tmp_path: Path) -> None:
    """3 primaries SIGKILLed 9 s apart mid-drain, Python/CLI/Celery intake with IMUNBAN_DURABLE_REPLICAS=1: 0 lost,
    every worker's consumer, heartbeat and API calls back within 2 s of each promotion, never stalled, no NOSCRIPT."""
    report = run_drill(tmp_path, DrillConfig(failovers=3, interval_s=9.0), log=print)
    print(f"\nfailover drill: {report}")  # the figures, for -s runs and the bench write-up
    assert report.drained, "the queue did not drain after the failovers"
    assert report.acknowledged >= 2_000 and all(report.acknowledged_by.values()), report.acknowledged_by
    assert report.lost == 0, f"acknowledged but never delivered: {report.lost_sample} ({dict(report.lost_by)})"
    assert len(report.failovers) == 3
    assert len({f.promoted_port for f in report.failovers}) >= 2  # the old primary came back and was promoted again
    for number, failover in enumerate(report.failovers, 1):
        for what, seconds in (
            ("API call", failover.first_delivery_s),
            ("heartbeat", failover.heartbeat_s),
            ("consumer connected", failover.consumer_s),
        ):
            assert all(s is not None and s <= RESUME_S for s in seconds), f"failover {number}: {what} {seconds}"
        assert failover.rejoined_s is not None  # the killed primary is back as a replica
    assert report.states_seen["stalled"] == 0, report.stalled_reasons
    assert report.workers_died == 0
    assert report.noscript_errors == 0  # SCRIPT FLUSH and the new primary's empty cache reached no caller


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelRig]:
    """One healthy rig with passwords on the primary and on the sentinels, shared by the bad cases."""
    with SentinelRig(tmp_path_factory.mktemp("rig"), password=PASSWORD, sentinel_password=SENTINEL_PASSWORD) as started:
        yield started


def _env(monkeypatch: pytest.MonkeyPatch, url: str, **extra: str) -> None:
    monkeypatch.setenv("IMUNBAN_REDIS_URL", url)
    monkeypatch.setenv("IMUNBAN_SENTINEL_PASSWORD", extra.pop("sentinel_password", SENTINEL_PASSWORD))
    for name, value in extra.items():
        monkeypatch.setenv(f"IMUNBAN_{name.upper()}", value)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_and_python_api_through_sentinel(
    rig: SentinelRig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """enqueue, status, trace, cancel, dead replay and Producer.from_env all work on a redis+sentinel:// URL."""
    _env(monkeypatch, rig.url(db=1), durable_replicas="2")
    assert _cli(capsys, "enqueue", "g1", "alice", "bob")[0] == 0
    code, out, _ = _cli(capsys, "status", "--json")
    assert code == 0 and json.loads(out)["queued"] == 2
    assert _cli(capsys, "trace", "g1", "alice")[0] == 0
    code, out, _ = _cli(capsys, "cancel", "g1", "bob")
    assert code == 0 and "cancelled 1" in out
    code, _, err = _cli(capsys, "dead", "replay", "g1", "nobody")
    assert code == 1 and "no dead letter matched" in err  # the replay ran through Sentinel and found nothing
    producer = Producer.from_env()
    assert producer.enqueue("g2", ["carol"]).stored == 1
    assert producer.bulk({"group_id": f"g{i % 7}", "member": f"m{i}"} for i in range(5_000)).stored == 5_000
    producer.deployment.client.flushdb()


def test_unreachable_replica_count_fails_clearly(
    rig: SentinelRig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 replicas asked of a rig with 2: the CLI exits non-zero saying it may or may not be stored, re-send is safe."""
    _env(monkeypatch, rig.url(db=2), durable_replicas="3", durable_timeout_ms="200")
    code, out, err = _cli(capsys, "enqueue", "g", "alice")
    assert code != 0 and out == ""
    assert "2 of 3 replica(s)" in err and "may or may not be stored" in err and "re-sending it is safe" in err
    code, _, err = _cli(capsys, "cancel", "g", "alice")
    assert code != 0 and "may or may not be stored" in err
    with pytest.raises(DurabilityError):
        Producer.from_env().bulk({"group_id": "g", "member": f"m{i}"} for i in range(3_000))


def test_celery_intake_leaves_an_unconfirmed_message_unacknowledged(rig: SentinelRig) -> None:
    """imunban.unban with too few replicas raises Reject(requeue): the message comes back, it is not acked."""
    env = {**CREDENTIALS, "IMUNBAN_REDIS_URL": rig.url(db=3), "IMUNBAN_SENTINEL_PASSWORD": SENTINEL_PASSWORD}
    strict = {**env, "IMUNBAN_DURABLE_REPLICAS": "3", "IMUNBAN_DURABLE_TIMEOUT_MS": "100"}
    celery = create_celery(Settings.from_env(strict))
    with pytest.raises(Reject) as caught:
        unban(celery, group_id="g", members=["alice"])
    assert caught.value.requeue
    ok = create_celery(Settings.from_env({**env, "IMUNBAN_DURABLE_REPLICAS": "2"}))
    assert unban(ok, group_id="g", members=["bob"])["ready"] == 1


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no sentinel", "no sentinel reachable"),
        ("unknown service", "monitor no service 'nosuch' (they monitor: imunban)"),
        ("wrong sentinel password", "IMUNBAN_SENTINEL_PASSWORD"),
        ("wrong primary password", "invalid username-password pair"),
    ],
)
def test_bad_sentinel_setups_fail_clearly(
    rig: SentinelRig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str, expected: str
) -> None:
    """Each bad setup makes `imunban status` exit non-zero with an error that says what is wrong."""
    url = rig.url()
    if case == "no sentinel":
        url = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/imunban"
    elif case == "unknown service":
        url = url.replace("/imunban/", "/nosuch/")
    elif case == "wrong primary password":
        url = rig.url(password="wrong")
    _env(monkeypatch, url, sentinel_password="wrong" if case == "wrong sentinel password" else SENTINEL_PASSWORD)
    code, _, err = _cli(capsys, "status")
    assert code != 0
    assert expected in err
    assert PASSWORD not in err and SENTINEL_PASSWORD not in err


def test_worker_refuses_an_evicting_primary(rig: SentinelRig) -> None:
    """A primary with maxmemory-policy allkeys-lru: preparing a worker fails, naming the setting."""
    settings = Settings.from_env(
        {**CREDENTIALS, "IMUNBAN_REDIS_URL": rig.url(), "IMUNBAN_SENTINEL_PASSWORD": SENTINEL_PASSWORD}
    )
    client = connect(settings)
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(ConfigError, match="maxmemory-policy"):
            prepare_worker(open_deployment(settings))
    finally:
        client.config_set("maxmemory-policy", "noeviction")
    prepare_worker(open_deployment(settings))
