"""`imunban status` says each app's state and why; `status --check` exits 0, 1 or 2; `pause`/`resume` are audited."""

from __future__ import annotations

import getpass
import json

import redis

from helpers import Run, server_ms
from imunban.heartbeat import Heartbeat
from imunban.hold import Hold
from imunban.keys import Keys

KEYS = Keys()


def live_worker(r: redis.Redis) -> None:
    Heartbeat(r, KEYS, "w1:42").beat()


def test_check_is_ok_idle_on_an_empty_store(cli: Run) -> None:
    """Nothing stored: one line, OK idle, exit 0."""
    rc, out, _ = cli("status", "--check")
    assert rc == 0 and out.count("\n") == 1 and out.startswith("OK idle: nothing due")


def test_check_says_stalled_and_exits_2_with_work_due_and_no_worker(cli: Run) -> None:
    """Requests due and no live worker: CRITICAL stalled, exit 2, one line."""
    cli("enqueue", "g", "a", "b")
    rc, out, _ = cli("status", "--check")
    assert rc == 2 and out.count("\n") == 1
    assert out.startswith("CRITICAL stalled: no live worker (none has ticked within the last hour) while 2 requests")


def test_check_is_ok_while_a_live_worker_delivers(cli: Run, r: redis.Redis) -> None:
    """Work just due and a worker alive: OK delivering, exit 0."""
    cli("enqueue", "g", "a")
    live_worker(r)
    rc, out, _ = cli("status", "--check")
    assert rc == 0 and out.startswith("OK delivering: 1 request due")


def test_check_is_degraded_when_the_oldest_due_request_lags(cli: Run, r: redis.Redis) -> None:
    """Due 2 minutes ago, claims going on, --lag-s 60: WARNING (exit 1); --lag-s 600: OK."""
    cli("enqueue", "g", "a", "--at", str((server_ms(r) - 120_000) / 1000))
    live_worker(r)
    r.hset(KEYS.stats, "last_claim_ms", server_ms(r))
    rc, out, _ = cli("status", "--check", "--lag-s", "60")
    assert rc == 1 and out.startswith("WARNING delivering") and "over the 1m 0s lag threshold" in out
    assert cli("status", "--check", "--lag-s", "600")[0] == 0


def test_check_exits_2_on_a_hold_and_1_on_a_pause(cli: Run, r: redis.Redis) -> None:
    """A hold is CRITICAL held (2); a pause, deliberate, is WARNING paused (1) and wins over the hold."""
    live_worker(r)
    Hold(r, KEYS).set(70001, "UserSig expired")
    rc, out, _ = cli("status", "--check")
    assert rc == 2 and out.startswith("CRITICAL held: held by ErrorCode 70001 (UserSig expired)")
    assert cli("pause", "--reason", "rotating the key")[0] == 0
    rc, out, _ = cli("status", "--check")
    assert rc == 1 and out.startswith("WARNING paused: paused by cli ") and "rotating the key" in out


def test_check_with_json_prints_the_document_and_exits_with_the_level(cli: Run) -> None:
    """--check --json: the whole document, and the exit status of the check."""
    cli("enqueue", "g", "a")
    rc, out, _ = cli("status", "--check", "--json")
    data = json.loads(out)
    assert rc == 2 and data["state"]["state"] == "stalled" and data["apps"]["default"]["state"]["level"] == 2


def test_status_lists_the_state_workers_lag_claim_limiter_and_memory(cli: Run, r: redis.Redis) -> None:
    """The table starts with the state and its reason, then workers alive, oldest due, last claim, limiter, memory."""
    cli("enqueue", "g", "a")
    live_worker(r)
    out = cli("status")[1]
    rows = {line.strip("│| ").split("  ")[0].strip(): line for line in out.splitlines()}
    assert "DELIVERING" in rows and "1 request due" in rows["DELIVERING"]
    assert "1 (last tick" in rows["workers alive"] and "w1:42" in out
    assert "ago" in rows["oldest due"] and "none recorded" in rows["last claim"]
    assert "-" in rows["limiter use"] and "(no maxmemory set)" in rows["Redis memory"]
    assert out.index("DELIVERING") < out.index("queued (due now)")


def test_status_json_has_the_state_pause_and_workers(cli: Run, r: redis.Redis) -> None:
    """status --json: the state (reason, level, figures) per app and for the totals, the pause, the workers."""
    live_worker(r)
    cli("pause", "--reason", "deploy")
    data = json.loads(cli("status", "--json")[1])
    assert data["state"]["state"] == "paused" and data["state"]["level"] == 1
    assert data["pause"]["reason"] == "deploy" and data["pause"]["app"] == "default"
    assert data["apps"]["default"]["pause"]["by"].startswith("cli ")
    assert [w["worker"] for w in data["workers"]] == ["w1:42"] and data["workers"][0]["alive"]
    one = json.loads(cli("status", "--app", "default", "--json")[1])
    assert one["state"]["state"] == "paused" and one["pause"]["reason"] == "deploy"


def test_pause_and_resume_from_the_command_line_are_audited(cli: Run, r: redis.Redis) -> None:
    """pause and resume say what they did and write audit entries: role cli, client the OS user at this host."""
    rc, out, _ = cli("pause", "--reason", "DB migration")
    assert rc == 0 and out.startswith("paused delivery of app default")
    assert cli("pause", "--reason", "DB migration, longer")[1].startswith("app default was paused already")
    rc, out, _ = cli("resume")
    assert rc == 0 and out.startswith("resumed delivery of app default after ") and "(DB migration, longer)" in out
    assert cli("resume")[1].startswith("app default was not paused")
    entries = [fields for _, fields in r.xrange(KEYS.outcomes) if fields["outcome"] == "audit"]
    assert [(e["action"], e["count"], e["role"], e["via"]) for e in entries] == [
        ("pause", "1", "cli", "cli"),
        ("pause", "0", "cli", "cli"),
        ("resume", "1", "cli", "cli"),
        ("resume", "0", "cli", "cli"),
    ]
    assert entries[0]["client"].startswith(f"{getpass.getuser()}@")


def test_pause_needs_a_reason(cli: Run, r: redis.Redis) -> None:
    """No --reason: a usage error; an empty one: an error naming --reason; nothing is paused either way."""
    assert cli("pause")[0] == 2
    rc, _, err = cli("pause", "--reason", "  ")
    assert rc == 2 and "--reason" in err
    assert not r.exists(KEYS.pause)
