"""``imunban dead list|replay|purge`` with the console's filters (--code, --group) and member selection."""

from __future__ import annotations

import json

import redis
from test_cli import KEYS, end_as

from helpers import Run
from imunban.cli.common import fmt_ms
from imunban.deadletter import DeadLetters
from imunban.trace import trace


def dead_members(r: redis.Redis) -> list[tuple[str, str]]:
    return sorted((d.group_id, d.member) for d in DeadLetters(r, KEYS).list(limit=1_000))


def three_kinds(r: redis.Redis) -> None:
    """g1/a and g1/b dead with 10004, g2/c with 10004, g2/d with 70107."""
    end_as(r, "g1", "a", "dead", 10004, "no such member")
    end_as(r, "g1", "b", "dead", 10004, "no such member")
    end_as(r, "g2", "c", "dead", 10004, "no such member")
    end_as(r, "g2", "d", "dead", 70107, "not a member")


def test_dead_list_filters_by_code_and_group_oldest_first(cli: Run, r: redis.Redis) -> None:
    """dead list --code/--group shows only the matching dead letters, oldest first, paged over the matches."""
    three_kinds(r)
    listed = json.loads(cli("dead", "list", "--json", "--code", "10004")[1])
    assert [(d["group_id"], d["member"]) for d in listed] == [("g1", "a"), ("g1", "b"), ("g2", "c")]
    listed = json.loads(cli("dead", "list", "--json", "--group", "g2")[1])
    assert [d["member"] for d in listed] == ["c", "d"]
    listed = json.loads(cli("dead", "list", "--json", "--group", "g2", "--code", "70107")[1])
    assert [d["member"] for d in listed] == ["d"]
    listed = json.loads(cli("dead", "list", "--json", "--code", "10004", "--offset", "1", "--limit", "1")[1])
    assert [d["member"] for d in listed] == ["b"]
    rc, out, _ = cli("dead", "list", "--code", "10004")
    assert rc == 0 and "dead letters of ErrorCode 10004: 3 (showing 3 from 0)" in out
    assert cli("dead", "list", "--code", "1")[1] == "no dead letters of ErrorCode 1 (0 in all)\n"


def test_dead_replay_by_filter_replays_only_the_matching(cli: Run, r: redis.Redis) -> None:
    """dead replay --code N --group G schedules just those again; the rest stay dead."""
    three_kinds(r)
    assert cli("dead", "replay", "--code", "10004", "--group", "g2") == (0, "replayed 1 dead letter (due now)\n", "")
    assert trace(r, KEYS, "g2", "c")["state"] in ("ready", "scheduled")
    assert dead_members(r) == [("g1", "a"), ("g1", "b"), ("g2", "d")]
    assert cli("dead", "replay", "--group", "g1") == (0, "replayed 2 dead letters (due now)\n", "")
    assert dead_members(r) == [("g2", "d")]


def test_dead_replay_or_purge_matching_nothing_exits_1(cli: Run, r: redis.Redis) -> None:
    """A filter or a named member that matches no dead letter says so on stderr and exits 1; nothing changes."""
    three_kinds(r)
    rc, out, err = cli("dead", "replay", "--code", "60003")
    assert (rc, out) == (1, "")
    assert err == "imunban: no dead letter matched: none is of ErrorCode 60003; nothing done\n"
    rc, out, err = cli("dead", "replay", "G", "nobody")
    assert (rc, out) == (1, "")
    assert "none of the 1 request given is a dead letter" in err
    rc, _, err = cli("dead", "purge", "--group", "nope", "--yes")
    assert rc == 1 and "none is of group nope" in err
    rc, _, err = cli("dead", "purge", "g1", "nobody", "--yes")
    assert rc == 1 and "none of the 1 request given is a dead letter" in err
    assert len(dead_members(r)) == 4


def test_dead_purge_by_filter_and_by_member(cli: Run, r: redis.Redis) -> None:
    """dead purge deletes what --code/--group or GROUP MEMBER... choose (after --yes), not everything."""
    three_kinds(r)
    rc, _, err = cli("dead", "purge", "--code", "10004")
    assert rc == 2 and "purge deletes the 3 dead letters of ErrorCode 10004 for good; add --yes" in err
    assert len(dead_members(r)) == 4
    assert cli("dead", "purge", "--code", "10004", "--group", "g1", "--yes") == (0, "purged 2 dead letters\n", "")
    assert dead_members(r) == [("g2", "c"), ("g2", "d")]
    assert cli("dead", "purge", "g2", "d", "--yes") == (0, "purged 1 dead letter\n", "")
    assert dead_members(r) == [("g2", "c")]
    assert cli("dead", "purge", "--all", "--yes") == (0, "purged 1 dead letter\n", "")
    assert dead_members(r) == []


def test_piped_tables_keep_every_column_whole(cli: Run, r: redis.Redis) -> None:
    """With stdout not a terminal (captured here), no column is cut to '…' however long the row."""
    end_as(r, "@TGS#" + "g" * 40, "member-" + "m" * 50, "dead", 10004, "no such member " + "x" * 80)
    rc, out, _ = cli("dead", "list")
    assert rc == 0 and "…" not in out
    assert "member-" + "m" * 50 in out and "x" * 80 in out
    dead_since = json.loads(cli("dead", "list", "--json")[1])[0]["at_ms"]
    assert fmt_ms(dead_since) in out  # the whole time, e.g. 2026-12-03T06:00:00.000Z
    rc, out, _ = cli("status")
    assert rc == 0 and "…" not in out
