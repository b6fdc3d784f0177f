"""The producer and operator commands, run in-process against a real redis-server (and twice as a subprocess)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

import helpers
from helpers import Run, server_ms
from imunban.cli import main
from imunban.deadletter import DeadLetters
from imunban.errors import RedisFullError
from imunban.hold import Hold
from imunban.keys import Keys
from imunban.settings import LingerPolicy
from imunban.stats import status
from imunban.store import Batch, Store
from imunban.trace import trace

KEYS = Keys("imunban")
AT_ISO = "2030-01-01T00:00:00Z"
AT_MS = 1_893_456_000_000
IMUNBAN = Path(sys.executable).parent / "imunban"


def end_as(r: redis.Redis, group: str, member: str, outcome: str, code: int = 0, info: str = "") -> None:
    """Enqueue, claim and acknowledge one request with ``outcome`` under this file's keys (tests/helpers.py)."""
    helpers.end_as(r, group, member, outcome, code, info, keys=KEYS)


def write(tmp_path: Path, *lines: object) -> str:
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return str(path)


# -- enqueue ------------------------------------------------------------------------------------


def test_enqueue_positional_now(cli: Run, r: redis.Redis) -> None:
    """GROUP MEMBER...: stored ready now, one summary line on stdout."""
    rc, out, err = cli("enqueue", "@TGS#aJRGC4MH6", "alice", "bob", "alice")
    assert (rc, err) == (0, "")
    assert out == "stored 2 requests: 2 ready, 0 scheduled (0 replaced a pending request)\n"
    assert status(r, KEYS)["queued"] == 2


@pytest.mark.parametrize("when", [AT_ISO, "2030-01-01T08:00:00+08:00", "1893456000", "2030-01-01T00:00:00"])
def test_enqueue_at(cli: Run, r: redis.Redis, when: str) -> None:
    """--at takes ISO-8601 (offset or naive UTC) or Unix seconds."""
    rc, out, _ = cli("enqueue", "g", "a", "--at", when)
    assert rc == 0 and "1 scheduled" in out
    assert trace(r, KEYS, "g", "a")["due_ms"] == AT_MS


@pytest.mark.parametrize(("delay", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7_200), ("3d", 259_200), ("45", 45)])
def test_enqueue_in(cli: Run, r: redis.Redis, delay: str, seconds: int) -> None:
    """--in DURATION schedules that long after the Redis server's now."""
    before = server_ms(r)
    rc, out, _ = cli("enqueue", "g", "a", "--in", delay)
    after = server_ms(r)
    assert rc == 0 and "1 scheduled" in out
    due = trace(r, KEYS, "g", "a")["due_ms"]
    assert before + seconds * 1000 <= due <= after + seconds * 1000


def test_enqueue_priority_high(cli: Run, r: redis.Redis) -> None:
    """--priority high marks the request high."""
    assert cli("enqueue", "g", "a", "--priority", "high")[0] == 0
    assert trace(r, KEYS, "g", "a")["priority"] == "high"


def test_enqueue_replaced_is_reported(cli: Run) -> None:
    """Enqueuing a pending member again says it replaced one."""
    cli("enqueue", "g", "a", "--in", "1h")
    rc, out, _ = cli("enqueue", "g", "a")
    assert rc == 0 and "1 ready, 0 scheduled (1 replaced a pending request)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "", "a"], "imunban: error: group_id: must not be empty"),
        (["enqueue", "g", "x" * 33], "imunban: error: members[0]: must be at most 32 bytes, got 33"),
        (["enqueue", "g", "a\u00e9"], "imunban: error: members[0]: must be printable ASCII"),
        (["enqueue", "g"], "imunban: error: MEMBER: give GROUP_ID and at least one MEMBER, or --file PATH|-"),
        (["enqueue"], "imunban: error: MEMBER: give GROUP_ID and at least one MEMBER"),
        (["enqueue", "g", "a", "--at", "soon"], "imunban: error: --at: is neither Unix seconds nor ISO-8601"),
        (
            ["enqueue", "g", "a", "--at", "1796280070766"],
            "imunban: error: --at: must be Unix seconds, got 1796280070766: milliseconds? In seconds that is "
            "1796280070.766\n",
        ),
        (["enqueue", "g", "a", "--at", "99999999999999999"], "imunban: error: --at: must be Unix seconds between"),
        (["enqueue", "g", "a", "--in", "5x"], "imunban: error: --in: is not a duration: '5x'"),
        (["enqueue", "g", "a", "--in", "-5"], "imunban: error: --in: must not be negative"),
        (["enqueue", "g", "a", "--file", "x.jsonl"], "imunban: error: GROUP_ID: give either GROUP_ID MEMBER... or"),
        (["cancel", "g", ""], "imunban: error: members[0]: must not be empty"),
        (["trace", "g", "x" * 40], "imunban: error: member: must be at most 32 bytes"),
        (["trace", "g"], "imunban: error: MEMBER: give GROUP_ID MEMBER, or --member M"),
        (["trace", "--member", "x" * 33], "imunban: error: --member: must be at most 32 bytes"),
        (["trace", "g", "a", "--member", "a"], "imunban: error: --member: give either GROUP_ID MEMBER or --member M"),
    ],
)
def test_bad_arguments_exit_2_and_store_nothing(cli: Run, r: redis.Redis, args: list[str], message: str) -> None:
    """Bad input: a message naming the field on stderr, exit status 2, nothing stored."""
    rc, out, err = cli(*args)
    assert rc == 2
    assert out == ""
    assert err.startswith(message), err
    assert r.dbsize() == 0


@pytest.mark.parametrize(
    "args",
    [
        ["enqueue", "g", "a", "--at", AT_ISO, "--in", "5m"],
        ["enqueue", "g", "a", "--priority", "urgent"],
        ["dead", "list", "--limit", "0"],
        ["dead", "list", "--offset", "x"],
        ["dead"],
    ],
)
def test_usage_errors_exit_2(cli: Run, r: redis.Redis, args: list[str]) -> None:
    """Usage errors (argparse) exit 2 with a usage message and store nothing."""
    rc, _, err = cli(*args)
    assert rc == 2
    assert "usage: imunban" in err
    assert r.dbsize() == 0


# -- enqueue --file -----------------------------------------------------------------------------


def test_enqueue_file(cli: Run, r: redis.Redis, tmp_path: Path) -> None:
    """A JSON Lines file with both shapes, blank lines, 'at' and 'priority' is stored."""
    path = write(
        tmp_path,
        {"group_id": "g1", "member": "a"},
        "",
        {"group_id": "g1", "members": ["b", "c"], "priority": "high"},
        {"group_id": "g2", "member": "d", "at": AT_ISO},
        {"group_id": "g2", "member": "e", "at": 1_893_456_000},
    )
    rc, out, err = cli("enqueue", "--file", path)
    assert (rc, err) == (0, "")
    assert out == "stored 5 requests from 5 lines: 3 ready, 2 scheduled (0 replaced a pending request)\n"
    assert trace(r, KEYS, "g1", "b")["priority"] == "high"
    assert trace(r, KEYS, "g2", "e")["due_ms"] == AT_MS


def test_enqueue_file_defaults_from_options(cli: Run, r: redis.Redis, tmp_path: Path) -> None:
    """--at/--in/--priority apply to lines that do not say otherwise."""
    path = write(tmp_path, {"group_id": "g", "member": "a"}, {"group_id": "g", "member": "b", "priority": "normal"})
    assert cli("enqueue", "-f", path, "--at", AT_ISO, "--priority", "high")[0] == 0
    a, b = trace(r, KEYS, "g", "a"), trace(r, KEYS, "g", "b")
    assert (a["due_ms"], a["priority"], b["due_ms"], b["priority"]) == (AT_MS, "high", AT_MS, "normal")
    before = server_ms(r)
    assert cli("enqueue", "-f", path, "--in", "1h")[0] == 0
    assert trace(r, KEYS, "g", "a")["due_ms"] >= before + 3_600_000


def test_enqueue_stdin(cli: Run, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """--file - reads JSON Lines from standard input."""
    data = "\n".join(json.dumps({"group_id": "g", "member": f"u{i}"}) for i in range(50)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    rc, out, _ = cli("enqueue", "--file", "-")
    assert rc == 0 and out.startswith("stored 50 requests from 50 lines")
    assert status(r, KEYS)["queued"] == 50


def test_enqueue_stdin_bad_line_stores_nothing(cli: Run, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad line on stdin: line number and field reported, nothing stored."""
    good = [json.dumps({"group_id": "g", "member": f"u{i}"}) for i in range(10)]
    data = "\n".join([*good, '{"group_id": "g", "members": ["ok", 5]}']).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    rc, out, err = cli("enqueue", "-f", "-")
    assert (rc, out) == (2, "")
    assert err == "imunban: error: line 11: members[1]: must be a string, got int\n"
    assert r.dbsize() == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{oops", "line 3: line: is not valid JSON"),
        ('{"group_id": "g"}', "line 3: member: give exactly one of 'member' or 'members'"),
        ('{"group_id": "g", "member": "a", "at": "next week"}', "line 3: at: is neither Unix seconds nor ISO-8601"),
        ('{"group_id": "g", "member": "a", "priority": "asap"}', "line 3: priority: must be 'high' or 'normal'"),
        ('{"group_id": "g", "member": "a", "extra": 1}', "line 3: extra: is not a known field"),
    ],
)
def test_enqueue_file_bad_line_stores_nothing(cli: Run, r: redis.Redis, tmp_path: Path, bad: str, message: str) -> None:
    """A bad line anywhere: 'imunban: error: line N: field: reason', exit 2, nothing stored at all."""
    path = write(tmp_path, {"group_id": "g", "member": "a"}, "", bad, {"group_id": "g", "member": "z"})
    rc, out, err = cli("enqueue", "--file", path)
    assert (rc, out) == (2, "")
    assert err.startswith(f"imunban: error: {message}"), err
    assert r.dbsize() == 0


def test_enqueue_file_reports_every_bad_line_in_one_pass(cli: Run, r: redis.Redis, tmp_path: Path) -> None:
    """Several bad lines: each with its number and field in one error (the first 20, then a count); nothing stored."""
    good = {"group_id": "g", "member": "a"}
    path = write(tmp_path, good, "{oops", good, '{"group_id": "g"}', '{"group_id": "g", "member": "a", "at": "x"}')
    rc, out, err = cli("enqueue", "--file", path)
    assert (rc, out) == (2, "")
    assert err.splitlines() == [
        "imunban: error: --file: 3 bad lines; nothing was stored:",
        "  line 2: line: is not valid JSON: Expecting property name enclosed in double quotes at column 2",
        "  line 4: member: give exactly one of 'member' or 'members'",
        "  line 5: at: is neither Unix seconds nor ISO-8601: 'x'",
    ]
    path = write(tmp_path, *(['{"group_id": ""}'] * 25), good)
    rc, _, err = cli("enqueue", "--file", path)
    shown = err.splitlines()
    assert rc == 2 and shown[0] == "imunban: error: --file: 25 bad lines; nothing was stored:"
    assert shown[1].startswith("  line 1: ") and shown[20].startswith("  line 20: ")
    assert shown[21:] == ["  and 5 more bad lines"]
    assert r.dbsize() == 0


def test_enqueue_big_file_bad_last_line_stores_nothing(cli: Run, r: redis.Redis, tmp_path: Path) -> None:
    """Even after 30,000 good lines, a bad last line means nothing is stored."""
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for i in range(30_000):
            f.write(json.dumps({"group_id": f"g{i % 300}", "member": f"u{i}"}) + "\n")
        f.write('{"group_id": "g", "member": ""}\n')
    rc, _, err = cli("enqueue", "--file", str(path))
    assert rc == 2 and "line 30001: member: must not be empty" in err
    assert r.dbsize() == 0


def test_enqueue_missing_file(cli: Run, tmp_path: Path) -> None:
    """An unreadable file is a clear --file error."""
    rc, _, err = cli("enqueue", "--file", str(tmp_path / "nope.jsonl"))
    assert rc == 2 and err.startswith("imunban: error: --file: cannot read")


def test_enqueue_empty_file(cli: Run, tmp_path: Path) -> None:
    """An empty file stores nothing and says so."""
    rc, out, _ = cli("enqueue", "--file", write(tmp_path, ""))
    assert rc == 0 and out.startswith("stored 0 requests from 0 lines")


def test_progress_bar_on_request(cli: Run, r: redis.Redis, tmp_path: Path) -> None:
    """--progress draws validating/storing bars on stderr; --no-progress keeps stderr silent."""
    path = write(tmp_path, *({"group_id": f"g{i % 50}", "member": f"u{i}"} for i in range(5_000)))
    rc, out, err = cli("enqueue", "--file", path, "--progress")
    assert rc == 0 and "stored 5000 requests" in out
    assert "validating" in err and "storing" in err and "5000/5000" in err
    rc, _, err = cli("enqueue", "--file", path, "--no-progress")
    assert (rc, err) == (0, "")
    assert status(r, KEYS)["queued"] == 5_000


# -- cancel -------------------------------------------------------------------------------------


def test_cancel(cli: Run, r: redis.Redis) -> None:
    """cancel removes pending requests and reports how many were pending."""
    cli("enqueue", "g", "a", "b")
    cli("enqueue", "g", "c", "--in", "1h")
    rc, out, _ = cli("cancel", "g", "a", "c", "zz")
    assert rc == 0
    assert out == "cancelled 2 of 3 members (the rest were not pending)\n"
    snapshot = status(r, KEYS)
    assert (snapshot["queued"], snapshot["scheduled"]) == (1, 0)


# -- status -------------------------------------------------------------------------------------


def test_status_json_keys(cli: Run, r: redis.Redis) -> None:
    """status --json has queued, scheduled, in_flight, delivered, dead, hold (null) and the counters."""
    cli("enqueue", "g", "a", "b")
    cli("enqueue", "g", "c", "--in", "1h")
    end_as(r, "h", "x", "delivered")
    rc, out, _ = cli("status", "--json")
    assert rc == 0
    data = json.loads(out)
    assert {"queued", "scheduled", "in_flight", "delivered", "dead", "hold"} <= set(data)
    assert (data["queued"], data["scheduled"], data["in_flight"], data["delivered"], data["dead"]) == (2, 1, 0, 1, 0)
    assert data["hold"] is None
    assert data["counters"]["rejected_messages"] == 0


def test_status_json_hold(cli: Run, r: redis.Redis) -> None:
    """During a hold, status --json shows its code, info and since_ms; the table shows it too."""
    Hold(r, KEYS).set(70003, "invalid usersig")
    data = json.loads(cli("status", "--json")[1])
    assert data["hold"]["code"] == 70003
    assert data["hold"]["info"] == "invalid usersig"
    assert abs(data["hold"]["since_ms"] - server_ms(r)) < 10_000
    rc, out, _ = cli("status")
    assert rc == 0 and "HOLD" in out and "70003" in out and "invalid usersig" in out


def test_status_table(cli: Run, r: redis.Redis) -> None:
    """status prints a readable table with the counts."""
    cli("enqueue", "g", "a", "b", "c")
    rc, out, _ = cli("status")
    assert rc == 0
    assert "queued (due now)" in out and "STALLED" in out  # three requests due and no worker
    assert any(line.strip("│| ").startswith("queued (due now)") and "3" in line for line in out.splitlines())


def test_status_table_titles_state_and_totals_apart(cli: Run, r: redis.Redis) -> None:
    """status shows the state now and the all-time counters under two titles, each name once."""
    cli("enqueue", "g", "a")
    out = cli("status")[1]
    assert "state now" in out and "totals since the store began" in out
    assert out.index("state now") < out.index("dead letters") < out.index("totals since the store began")
    names = [line.strip("│| ").split("  ")[0].strip() for line in out.splitlines()]
    assert names.count("delivered") == 1 and names.count("dead") == 1


def test_bench_help_shows_a_plain_percent_sign(capsys: pytest.CaptureFixture[str]) -> None:
    """imunban bench --help says "10 %", not "10 %%"."""
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out and "100 % load" in out


# -- dead letters -------------------------------------------------------------------------------


def test_dead_list_replay_purge(cli: Run, r: redis.Redis) -> None:
    """dead list shows dead letters; replay schedules them again; purge needs --yes."""
    assert cli("dead", "list")[1] == "no dead letters (0 in all)\n"
    for member in ("a", "b", "c"):
        end_as(r, "g", member, "dead", 10004, "no such member")
    rc, out, _ = cli("dead", "list")
    assert rc == 0 and "dead letters: 3" in out and "10004" in out and "no such member" in out
    listed = json.loads(cli("dead", "list", "--json")[1])
    assert [(d["group_id"], d["member"], d["code"], d["attempts"]) for d in listed] == [
        ("g", "a", 10004, 1),
        ("g", "b", 10004, 1),
        ("g", "c", 10004, 1),
    ]
    assert [d["member"] for d in json.loads(cli("dead", "list", "--json", "--limit", "1", "--offset", "1")[1])] == ["b"]
    assert cli("dead", "replay", "g", "a") == (0, "replayed 1 dead letter (due now)\n", "")
    assert trace(r, KEYS, "g", "a")["state"] in ("ready", "scheduled")
    rc, _, err = cli("dead", "purge", "--all")
    assert rc == 2 and "add --yes" in err and "2 dead letters" in err
    assert len(json.loads(cli("dead", "list", "--json")[1])) == 2
    assert cli("dead", "purge", "--all", "--yes") == (0, "purged 2 dead letters\n", "")
    assert json.loads(cli("dead", "list", "--json")[1]) == []


def test_dead_replay_all(cli: Run, r: redis.Redis) -> None:
    """dead replay --all schedules every dead letter again."""
    for member in ("a", "b"):
        end_as(r, "g", member, "dead", 60003, "bad")
    assert cli("dead", "replay", "--all")[1] == "replayed 2 dead letters (due now)\n"
    assert status(r, KEYS)["dead"] == 0


def test_dead_replay_of_nothing_dead_says_so_and_exits_1(cli: Run, r: redis.Redis) -> None:
    """dead replay G M where no given pair is a dead letter: no silent "replayed 0", exit 1; --all on none says so."""
    end_as(r, "g", "a", "dead", 60003, "bad")
    rc, out, err = cli("dead", "replay", "g", "nobody", "else")
    assert (rc, out) == (1, "")
    assert err == "imunban: no dead letter matched: none of the 2 requests given is a dead letter; nothing done\n"
    assert status(r, KEYS)["dead"] == 1
    assert cli("dead", "replay", "g", "a", "nobody") == (
        0, "replayed 1 dead letter (due now); 1 of those given was not a dead letter\n", "",
    )  # fmt: skip
    assert cli("dead", "replay", "--all") == (0, "no dead letters to replay\n", "")


def test_dead_replay_says_what_it_skipped_and_why(cli: Run, r: redis.Redis) -> None:
    """A dead letter cancelled or superseded since it died is not replayed: the CLI counts the skipped and says why."""
    for member in ("old", "again", "fine"):
        cli("enqueue", "g", member, "--instruction-version", "100")
        store = Store(r, KEYS, linger=LingerPolicy(0))
        batch = store.claim("g")
        assert isinstance(batch, Batch)
        store.ack(batch, "dead", code=60003, info="bad")
    cli("enqueue", "g", "old", "--instruction-version", "300")  # a newer instruction, then delivered
    end_batch = Store(r, KEYS, linger=LingerPolicy(0)).claim("g")
    assert isinstance(end_batch, Batch)
    Store(r, KEYS).ack(end_batch, "delivered")
    cli("enqueue", "g", "again", "--at", AT_ISO)  # pending again: that instruction stands
    rc, out, _ = cli("dead", "replay", "--all")
    assert rc == 0
    assert out == (
        "replayed 1 dead letter (due now)\n"
        "skipped 2: 1 cancelled or superseded by a higher version since they died; "
        "1 pending or in flight again (the newer instruction stands)\n"
    )
    assert trace(r, KEYS, "g", "old")["state"] == "delivered"
    assert trace(r, KEYS, "g", "again")["due_ms"] == AT_MS


def test_dead_replay_all_stopped_part_way_says_what_it_replayed(
    cli: Run, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--all replays in rounds; a Redis error in a later round is reported with what the rounds before replayed."""
    for member in ("a", "b"):
        end_as(r, "g", member, "dead", 60003, "bad")
    real = DeadLetters.replay
    rounds: list[int] = []

    def one_then_full(self: DeadLetters, pairs: Sequence[tuple[str, str]] = (), *, limit: int = 10_000) -> Any:
        rounds.append(1)
        if len(rounds) == 2:
            raise RedisFullError("dead letters")
        return real(self, pairs, limit=1)

    monkeypatch.setattr(DeadLetters, "replay", one_then_full)
    rc, out, err = cli("dead", "replay", "--all")
    assert (rc, out) == (2, "")
    assert "Redis is full" in err and "stopped part way: 1 dead letter replayed (0 skipped) before the error" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dead", "replay"], "replay: give one of --all, --code/--group, or GROUP_ID MEMBER"),
        (["dead", "replay", "--all", "g", "a"], "replay: give one of --all, --code/--group, or GROUP_ID MEMBER"),
        (["dead", "replay", "--all", "--code", "1"], "replay: give one of --all"),
        (["dead", "purge", "--yes"], "purge: give one of --all, --code/--group, or GROUP_ID MEMBER"),
        (["dead", "purge", "g", "a", "--group", "g"], "purge: give one of --all"),
        (["dead", "list", "--group", ""], "--group: must not be empty"),
        (["dead", "replay", "g"], "MEMBER: give at least one MEMBER"),
        (["dead", "replay", "g", ""], "members[0]: must not be empty"),
    ],
)
def test_dead_replay_errors(cli: Run, args: list[str], message: str) -> None:
    """dead replay and purge need exactly one selection: --all, --code/--group, or GROUP MEMBER..."""
    rc, _, err = cli(*args)
    assert rc == 2 and err.startswith(f"imunban: error: {message}")


# -- configuration and connection errors --------------------------------------------------------


def test_bad_setting_is_named(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad IMUNBAN_* value stops the command with an error naming the variable."""
    monkeypatch.setenv("IMUNBAN_REDIS_URL", "http://nope")
    rc, _, err = cli("status")
    assert rc == 2 and err.startswith("imunban: error: IMUNBAN_REDIS_URL")


def test_redis_down_is_a_clear_error(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Redis unreachable, a command fails quickly with a readable error (no traceback)."""
    monkeypatch.setenv("IMUNBAN_REDIS_URL", "redis://127.0.0.1:1/0")
    rc, out, err = cli("enqueue", "g", "a")
    assert (rc, out) == (2, "")
    assert err.startswith("imunban: error: ") and "Traceback" not in err


def test_key_prefix_is_honoured(cli: Run, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """IMUNBAN_KEY_PREFIX selects the deployment the commands work on."""
    monkeypatch.setenv("IMUNBAN_KEY_PREFIX", "other")
    cli("enqueue", "g", "a")
    assert status(r, Keys("other"))["queued"] == 1
    assert status(r, KEYS)["queued"] == 0


# -- the installed entry point ------------------------------------------------------------------


def test_entry_point_subprocess(redis_url: str, tmp_path: Path) -> None:
    """The installed `imunban` script enqueues from stdin and reports status --json."""
    env = {**os.environ, "IMUNBAN_REDIS_URL": redis_url}
    lines = "".join(json.dumps({"group_id": "g", "member": f"u{i}"}) + "\n" for i in range(3))
    done = subprocess.run(
        [str(IMUNBAN), "enqueue", "-f", "-"], input=lines, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stored 3 requests")
    done = subprocess.run([str(IMUNBAN), "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["queued"] == 3
    done = subprocess.run([str(IMUNBAN), "enqueue", "g", ""], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "imunban: error: members[0]: must not be empty\n"


def test_file_with_bad_option_reads_nothing(cli: Run, r: redis.Redis, tmp_path: Path) -> None:
    """--file with a bad --at or --in fails on the option before reading the file."""
    path = write(tmp_path, {"group_id": "g", "member": "a"})
    assert cli("enqueue", "-f", path, "--at", "later")[2].startswith("imunban: error: --at: ")
    assert cli("enqueue", "-f", path, "--in", "soon")[2].startswith("imunban: error: --in: ")
    assert r.dbsize() == 0


def test_progress_shown_automatically_only_for_big_input_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --progress/--no-progress: a bar for stdin or files >= 1 MiB, and only when stderr is a terminal."""
    from contextlib import ExitStack

    from rich.console import Console

    from imunban.cli.produce import PROGRESS_MIN_BYTES, _progress

    for terminal, size, shown in [
        (True, PROGRESS_MIN_BYTES, True),
        (True, None, True),
        (True, PROGRESS_MIN_BYTES - 1, False),
        (False, PROGRESS_MIN_BYTES * 10, False),
    ]:
        monkeypatch.setattr(Console, "is_terminal", property(lambda self, t=terminal: t))
        with ExitStack() as stack:
            assert (_progress(None, size, stack) is not None) is shown
