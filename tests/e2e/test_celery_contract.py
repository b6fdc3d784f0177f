"""The Celery contract (docs/celery-contract.md): tasks sent by clients that do not import imunban.

A real `imunban worker` consumes the queue; messages come from a separate Python process that
imports only celery, from plain redis-py (the documented raw envelope), from redis-cli, from
`celery call` and from the documented Node.js snippet.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from helpers import wait_for
from imunban.local.cluster import LocalCluster
from imunban.sim.core import SimConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "celery-contract.md"
BIN = Path(sys.executable).parent
#: Seconds to wait for a message to be consumed and its effect to show.
PATIENCE_S = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One worker, the simulator and Redis for the whole module; always stopped."""
    c = LocalCluster(tmp_path_factory.mktemp("contract"), workers=1, sim_config=SimConfig(latency_ms=5))
    c.start()
    yield c
    c.stop()


def unbanned(cluster: LocalCluster, group: str) -> frozenset[str]:
    assert cluster.simulator is not None
    return cluster.simulator.unbanned(group)


def counter(cluster: LocalCluster, name: str) -> int:
    return int(cluster.status()["counters"][name])


def celery_only(cluster: LocalCluster, calls: list[dict[str, Any]], cwd: Path) -> None:
    """Run ``send_task`` for each call in a fresh interpreter that imports celery and nothing of imunban."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from celery import Celery
        app = Celery(broker={cluster.redis_url!r})
        for call in json.loads(sys.argv[1]):
            app.send_task(call.pop("name"), queue="imunban", **call)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("worker", "tasks"))
        assert not leaked, leaked
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(calls)], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def envelope(body: Any, *, task: str = "imunban.unban", headers: dict[str, Any] | None = None) -> str:
    """A kombu/Celery protocol-2 envelope around ``body`` (JSON-encoded unless it is already a string)."""
    raw = body if isinstance(body, str) else json.dumps(body)
    tid = str(uuid.uuid4())
    return json.dumps(
        {
            "body": base64.b64encode(raw.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"task": task, "id": tid} if headers is None else headers,
            "properties": {
                "delivery_tag": str(uuid.uuid4()),
                "body_encoding": "base64",
                "delivery_info": {"exchange": "", "routing_key": "imunban"},
            },
        }
    )


def doc_block(marker: str) -> str:
    """The fenced code block that follows ``<!-- contract:MARKER -->`` in the contract document."""
    match = re.search(rf"<!-- contract:{marker} -->\s*```\w*\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"no {marker} block in {DOC}"
    return match.group(1)


def test_send_task_from_a_process_that_imports_only_celery(cluster: LocalCluster, tmp_path: Path) -> None:
    """imunban.unban and imunban.cancel sent with send_task by a celery-only process work."""
    at = time.time() + 3_600
    celery_only(
        cluster,
        [
            {"name": "imunban.unban", "kwargs": {"group_id": "py-g", "members": ["a", "b"], "priority": "high"}},
            {"name": "imunban.unban", "kwargs": {"group_id": "py-later", "members": ["c"], "at": at}},
            {"name": "imunban.unban", "kwargs": {"group_id": "py-later", "members": ["d"], "at": str(int(at))}},
        ],
        tmp_path,
    )
    assert wait_for(lambda: unbanned(cluster, "py-g") == {"a", "b"}, PATIENCE_S)
    assert wait_for(lambda: cluster.status()["scheduled"] == 2, PATIENCE_S)
    # Messages run concurrently, in no guaranteed order: the cancel goes once the unban is stored.
    celery_only(cluster, [{"name": "imunban.cancel", "kwargs": {"group_id": "py-later", "members": ["c"]}}], tmp_path)
    assert wait_for(lambda: cluster.status()["scheduled"] == 1 and counter(cluster, "cancelled") == 1, PATIENCE_S)


BAD_KWARGS: list[dict[str, Any]] = [
    {"kwargs": {"members": ["a"]}},  # group_id missing
    {"kwargs": {"group_id": "bad"}},  # members missing
    {"kwargs": {"group_id": "bad", "members": "alice"}},  # not a list
    {"kwargs": {"group_id": "bad", "members": {"alice": 1}}},  # an object, not a list
    {"kwargs": {"group_id": "bad", "members": ["\x00\x01junk\x7fjunk\x02junk\x03junk"]}},  # 21 chars of junk
    {"kwargs": {"group_id": "bad", "members": ["x" * 33]}},  # too long
    {"kwargs": {"group_id": "", "members": ["a"]}},
    {"kwargs": {"group_id": "bad", "members": ["a"], "colour": "red"}},  # unknown kwarg
    {"args": ["bad", ["a"]]},  # positional
    {"kwargs": {"group_id": "bad", "members": ["a"], "at": "not a time"}},
    {"kwargs": {"group_id": "bad", "members": ["a"], "at": 1_893_456_000_000}},  # milliseconds
    {"kwargs": {"group_id": "bad", "members": ["a"], "priority": "urgent"}},
    {"kwargs": {"group_id": "bad", "members": [f"u{i}" for i in range(10_001)]}},  # too many
    {"kwargs": {"group_id": "bad", "members": ["a"]}, "countdown": 60},  # Celery ETA
    {"name": "imunban.cancel", "kwargs": {"group_id": "bad"}},
    {"name": "imunban.cancel", "kwargs": {"group_id": "bad", "members": ["a"], "at": 1}},
    {"kwargs": {"group_id": "bad", "members": ["a"], "version": True}},  # a boolean is not a version
    {"kwargs": {"group_id": "bad", "members": ["a"], "version": 2**63}},  # beyond int64
    {"name": "imunban.cancel", "kwargs": {"group_id": "bad", "members": ["a"], "version": "7"}},  # text
]


def test_bad_payloads_are_rejected_counted_and_do_not_block(cluster: LocalCluster, tmp_path: Path) -> None:
    """Every bad message is rejected and counted, nothing of it stored; a good one after them is delivered."""
    rejected = counter(cluster, "rejected_messages")
    enqueued = counter(cluster, "enqueued")
    calls = [{"name": "imunban.unban", **bad} for bad in BAD_KWARGS]
    calls.append({"name": "imunban.unban", "kwargs": {"group_id": "after-bad", "members": ["ok"]}})
    celery_only(cluster, calls, tmp_path)
    assert wait_for(lambda: unbanned(cluster, "after-bad") == {"ok"}, PATIENCE_S)
    assert wait_for(lambda: counter(cluster, "rejected_messages") == rejected + len(BAD_KWARGS), PATIENCE_S)
    assert counter(cluster, "enqueued") == enqueued + 1
    assert unbanned(cluster, "bad") == frozenset()
    assert cluster.workers[0] is not None and cluster.workers[0].poll() is None


RAW_GARBAGE: list[str | bytes] = [
    "not json at all",
    b"\xff\xfe not utf-8",
    json.dumps([1, 2, 3]),
    json.dumps({"body": "", "headers": {}}),  # no properties
    json.dumps({"body": "", "headers": ["x"], "properties": {"delivery_tag": "t"}}),
    envelope({"x": 1}),  # body is an object, not [args, kwargs, embed]
    envelope([[], [1, 2], {}]),  # kwargs not an object
    envelope([[], {"group_id": "raw-bad", "members": ["a"]}, "embed"]),
    envelope("{broken json"),
    envelope([[], {}, {}], task="no.such.task"),
    envelope([[], {}, {}], headers={"task": "no.such.task"}),  # unknown task without id
    envelope(
        [[], {"group_id": "raw-bad", "members": ["a"]}, {}],
        headers={"task": "imunban.unban", "id": "1", "timelimit": 5},
    ),
    envelope(
        [[], {"group_id": "raw-bad", "members": ["a"]}, {}],
        headers={"task": "imunban.unban", "id": "2", "eta": "2030-01-01T00:00:00"},
    ),
]


def test_raw_garbage_on_the_queue_never_crashes_the_worker(cluster: LocalCluster) -> None:
    """Queue items that are not valid Celery messages are dropped and counted; the worker keeps serving."""
    rejected = counter(cluster, "rejected_messages")
    client = redis.Redis.from_url(cluster.redis_url)
    for item in RAW_GARBAGE:
        client.lpush("imunban", item)
    client.lpush("imunban", envelope([[], {"group_id": "after-garbage", "members": ["ok"]}, {}]))
    assert wait_for(lambda: unbanned(cluster, "after-garbage") == {"ok"}, PATIENCE_S)
    assert wait_for(lambda: counter(cluster, "rejected_messages") == rejected + len(RAW_GARBAGE), PATIENCE_S)
    assert unbanned(cluster, "raw-bad") == frozenset()
    assert cluster.workers[0] is not None and cluster.workers[0].poll() is None
    assert client.llen("imunban") == 0


def test_documented_envelope_works_with_plain_redis_and_redis_cli(cluster: LocalCluster) -> None:
    """The envelope in the document, LPUSHed by redis-py and by the documented redis-cli line, is delivered."""
    doc_envelope = json.loads(doc_block("envelope"))
    body = json.loads(base64.b64decode(doc_envelope["body"]))
    assert body == json.loads(doc_block("body"))
    assert body[1] == {"group_id": "@TGS#aJRGC4MH6", "members": ["alice", "bob"], "priority": "high"}
    assert cluster.simulator is not None
    before = cluster.sim_stats()["members_unbanned"]

    redis.Redis.from_url(cluster.redis_url).lpush("imunban", json.dumps(doc_envelope))
    assert wait_for(lambda: unbanned(cluster, "@TGS#aJRGC4MH6") >= {"alice", "bob"}, PATIENCE_S)
    assert wait_for(lambda: cluster.sim_stats()["members_unbanned"] == before + 2, PATIENCE_S)

    command = doc_block("redis-cli").strip()
    assert json.loads(command.split(" LPUSH imunban ", 1)[1].strip("'")) == doc_envelope
    env = {**os.environ, "IMUNBAN_REDIS_URL": cluster.redis_url, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: cluster.sim_stats()["members_unbanned"] == before + 4, PATIENCE_S)


def test_documented_celery_call_command(cluster: LocalCluster, tmp_path: Path) -> None:
    """The documented `celery call` line delivers."""
    command = doc_block("celery-call").strip()
    env = {**os.environ, "IMUNBAN_REDIS_URL": cluster.redis_url, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: "carol" in unbanned(cluster, "@TGS#aJRGC4MH6"), PATIENCE_S)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_documented_node_client(cluster: LocalCluster, tmp_path: Path) -> None:
    """The dependency-free Node.js client in the document publishes a task that is delivered."""
    script = tmp_path / "imunban-unban.js"
    script.write_text(doc_block("node"))
    assert cluster.redis_server is not None
    env = {"PATH": os.environ.get("PATH", ""), "REDIS_PORT": str(cluster.redis_server.port)}
    done = subprocess.run(
        ["node", str(script), "node-group", "n1", "n2"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("queued imunban.unban ")
    assert wait_for(lambda: unbanned(cluster, "node-group") == {"n1", "n2"}, PATIENCE_S)
