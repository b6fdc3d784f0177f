"""Static checks of the key layout and the Lua scripts: documented headers, keys only from KEYS/keys.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import redis

from imunban import keys as keys_module
from imunban.keys import HIGH_BAND_MS, MAX_MEMBERS, SEP, Keys, request_id, split_request_id
from imunban.scripts import KEY_ORDER, LIB, PER_GROUP, SCRIPT_KEYS, GroupArgs, lib_lines, lua_source, script_keys
from imunban.stats import Lease, Meta, parse_lease, parse_meta

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker" / "imunban"
LUA = WORKER / "lua"
DEMO_LUA = WORKER / "demo" / "lua"
SCRIPTS = sorted(p.stem for p in LUA.glob("*.lua") if p.stem != LIB)
DEMO_SCRIPTS = sorted(p.stem for p in DEMO_LUA.glob("*.lua"))
#: Every script file: the engine's (package imunban) and the demo's (package imunban.demo).
ALL_SCRIPTS = [LUA / f"{n}.lua" for n in SCRIPTS] + [DEMO_LUA / f"{n}.lua" for n in DEMO_SCRIPTS]

#: Redis commands the scripts may use -> how many leading arguments are key names.
KEY_ARGS = {
    "TIME": 0, "DBSIZE": 0, "FLUSHDB": 0,
    "GET": 1, "GETEX": 1, "SET": 1, "DEL": 2, "EXISTS": 1, "PEXPIRE": 1, "TYPE": 1,
    "HGET": 1, "HMGET": 1, "HSET": 1, "HDEL": 1, "HEXISTS": 1, "HINCRBY": 1,
    "ZADD": 1, "ZREM": 1, "ZSCORE": 1, "ZCARD": 1, "ZRANGE": 1, "ZREVRANGE": 1, "ZPOPMIN": 1,
    "ZREMRANGEBYSCORE": 1, "ZREMRANGEBYRANK": 1, "ZCOUNT": 1,
    "XADD": 1, "LPUSH": 1, "LTRIM": 1,
    "RENAME": 2, "HGETALL": 1, "HSETNX": 1,  # migrate.lua (and TYPE, above)
}  # fmt: skip
#: _lib.lua helpers -> how many leading arguments are key names.
LIB_KEY_ARGS = {
    "reindex": 2, "reindex_sched": 2, "emit_outcome": 1, "refuse_if_full": 1, "proceed_when_full": 1,
    "admit_version": 2, "version_ended": 2, "reply_get": 1, "reply_put": 2,
    "pace_count": 1, "pace_use": 1, "wake": 1, "emit_audit": 1, "has_room": 1, "trace_end": 1, "trace_stale": 2,
    "trace_get": 1,
}  # fmt: skip
CALL = re.compile(r"redis\.p?call\(\s*'(?P<cmd>\w+)'\s*(?:,\s*(?P<args>[^\n]*))?")
KEY_NAMES = (
    "schedidx|sched|groups|ready|inflight|leases|meta|high|"
    "dead|outcomes|stats|hold|pause|limiter|dispatch|probed|holds|okgroups"
)
KEY_NAMES += "|versions|version_ends|replies|reply_expiry|trace"
KEYISH = re.compile(rf"(^|[\w.-]*):({KEY_NAMES})(:|$)")
#: Header: "KEYS[3] stats", "KEYS[8] ready:{group}" (one key each) ...
HEADER_KEY = re.compile(r"KEYS\[(\d+)\]\s+([a-z0-9_]+)")
#: ... and, for scripts over many groups, "KEYS[6..5+2n] per group, <text>: ready:{group} sched:{group}".
HEADER_GROUP_KEYS = re.compile(r"KEYS\[(\d+)\.\.[^\]]*\] per group[^:\n]*:((?:\s+\w+:\{group\})+)")
#: The script's opening: "local K_STATS, K_META = KEYS[1], KEYS[2]".
KEY_LOCALS = re.compile(r"^local ((?:K_\w+, )*K_\w+) = ((?:KEYS\[\d+\], )*KEYS\[\d+\])[ \t]*$", re.MULTILINE)
#: The per-group keys of a script over many groups: "local ready_key, sched_key = group_keys(5, gi)".
GROUP_KEY_LOCALS = re.compile(r"^\s*local ([\w, ]+) = group_keys\((\d+), \w+\)[ \t]*$", re.MULTILINE)
#: The (old, new) names of a key migrate.lua moves: "local old, new = moved_keys(1, i)".
MOVED_KEY_LOCALS = re.compile(r"^\s*local ([\w, ]+) = moved_keys\((\d+), \w+\)[ \t]*$", re.MULTILINE)


def header(text: str) -> str:
    """The leading comment block of a script."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


def body(text: str) -> str:
    return text[len(header(text)) :]


def first_args(args: str, count: int) -> list[str]:
    """The first ``count`` top-level comma-separated arguments of a call's argument text."""
    out, depth, current = [], 0, ""
    for ch in args:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
            if len(out) == count:
                return out
            continue
        current += ch
    out.append(current.strip())
    return out[:count]


def covered(index: int, head: str, name: str) -> bool:
    """Whether ``name[index]`` is documented in the header, alone or by a range ``name[a..]``."""
    if f"{name}[{index}]" in head:
        return True
    return any(int(start) <= index for start in re.findall(rf"{name}\[(\d+)\.\.", head))


def header_keys(head: str) -> tuple[list[str], list[str]]:
    """The key names a header documents: (KEYS[1..m] one by one, the per-group keys after them or [])."""
    named = [(int(i), n) for i, n in HEADER_KEY.findall(head)]
    assert [i for i, _ in named] == list(range(1, len(named) + 1)), "KEYS[n] must be documented 1, 2, 3, ... in order"
    group = HEADER_GROUP_KEYS.search(head)
    if not group:
        return [n for _, n in named], []
    assert int(group[1]) == len(named) + 1, "the per-group range must start right after the named keys"
    return [n for _, n in named], re.findall(r"(\w+):\{group\}", group[2])


def key_locals(code: str) -> list[tuple[int, str]]:
    """(KEYS index, local name) of the script's ``local K_X, K_Y = KEYS[i], KEYS[j]`` lines, in order."""
    out: list[tuple[int, str]] = []
    for line in KEY_LOCALS.finditer(code):
        names, indices = line[1].split(", "), [int(i) for i in re.findall(r"\d+", line[2])]
        assert len(names) == len(indices), line[0]
        out += zip(indices, names, strict=True)
    return out


def key_aliases(code: str) -> set[str]:
    """Locals that hold a key: the K_* names taken from KEYS, and what group_keys() returns."""
    aliases = {name for _, name in key_locals(code)}
    for line in [*GROUP_KEY_LOCALS.finditer(code), *MOVED_KEY_LOCALS.finditer(code)]:
        aliases |= {name.strip() for name in line[1].split(",")} - {"_"}
    # migrate.lua's helpers take the keys moved_keys() gave as parameters of their own.
    for helper in re.finditer(r"^local function \w+\(([\w, ]+)\)", code, re.MULTILINE):
        if MOVED_KEY_LOCALS.search(code):
            aliases |= {name.strip() for name in helper[1].split(",")} & {"old", "new", "sibling"}
    return aliases


# -- the scripts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_SCRIPTS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_script_starts_with_a_header_naming_keys_and_argv(path: Path) -> None:
    """Each script opens with comments naming itself, every KEYS/ARGV slot it uses, and what it returns."""
    name, text = path.stem, path.read_text(encoding="utf-8")
    head, code = header(text), body(text)
    assert head.startswith(f"-- {name}: "), f"{name}.lua must start with '-- {name}: <what it does>'"
    assert "Returns" in head
    for kind in ("KEYS", "ARGV"):
        used = {int(i) for i in re.findall(rf"{kind}\[(\d+)\]", code)}
        if re.search(rf"{kind}\[", code):
            assert f"{kind}[" in head, f"{name}.lua uses {kind} without documenting it"
        undocumented = sorted(i for i in used if not covered(i, head, kind))
        assert not undocumented, f"{name}.lua: {kind}{undocumented} not described in the header"


@pytest.mark.parametrize("path", ALL_SCRIPTS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_script_names_its_keys_in_locals_as_its_header_does(path: Path) -> None:
    """The body opens with ``local K_<NAME>, ... = KEYS[1], ...`` in the header's order, and indexes KEYS
    nowhere else: per-group keys come only from _lib's group_keys(common, gi), common being the named keys."""
    text = path.read_text(encoding="utf-8")
    named, per_group = header_keys(header(text))
    code = body(text)
    assert key_locals(code) == [(i, f"K_{n.upper()}") for i, n in enumerate(named, 1)]
    for _, local in key_locals(code):
        assert len(re.findall(rf"\b{local}\b", code)) > 1, f"{local} is never used"
    rest = KEY_LOCALS.sub("", code)
    assert not re.search(r"\bKEYS\b", rest), f"{path.name} indexes KEYS outside its opening locals"
    commons = {int(c) for c in re.findall(r"\bgroup_keys\((\d+),", rest)}
    assert commons == ({len(named)} if per_group else set()), "group_keys(common, gi) must skip the named keys"
    moved = {int(c) for c in re.findall(r"\bmoved_keys\((\d+),", rest)}
    assert moved <= {len(named)}, "moved_keys(common, i) must skip the named keys"
    assert len(re.findall(r"\bmoved_keys\(", rest)) == len(MOVED_KEY_LOCALS.findall(rest))
    assert len(re.findall(r"\bgroup_keys\(", rest)) == len(GROUP_KEY_LOCALS.findall(rest))


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_keys_spec_matches_the_header_in_the_canonical_order(name: str) -> None:
    """scripts.SCRIPT_KEYS[name] lists the header's keys, which follow KEY_ORDER then (ready, sched)."""
    named, per_group = header_keys(header((LUA / f"{name}.lua").read_text(encoding="utf-8")))
    assert SCRIPT_KEYS[name] == (*named, *per_group)
    order = [*KEY_ORDER, *PER_GROUP]
    positions = [order.index(key) for key in SCRIPT_KEYS[name]]
    assert positions == sorted(set(positions)), f"{name}: keys out of the canonical order {order}"
    assert per_group in ([], list(PER_GROUP))


def test_every_script_has_a_key_spec() -> None:
    assert set(SCRIPT_KEYS) == set(SCRIPTS)


def built_keys(code: str, params: frozenset[str] = frozenset()) -> list[str]:
    """Key arguments of redis.call that are not a key local (K_* from KEYS, group_keys()) or an allowed parameter."""
    aliases = key_aliases(code) | params
    bad = []
    for call in CALL.finditer(code):
        cmd = call["cmd"].upper()
        assert cmd in KEY_ARGS, f"{cmd} is not in KEY_ARGS; add it with the number of its key arguments"
        args = first_args(call["args"] or "", KEY_ARGS[cmd])
        bad += [f"{cmd} {arg}" for arg in args if arg not in aliases]
    return bad


@pytest.mark.parametrize("path", [*ALL_SCRIPTS, LUA / f"{LIB}.lua"], ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_redis_call_takes_its_keys_from_KEYS(path: Path) -> None:
    """No script builds a key name: every key argument of redis.call comes from KEYS (or _lib's parameters).

    The one key _lib builds is a member's trace shard, ``shard_key``: trace_key() appends the member's digest to
    KEYS ``trace`` (a prefix with the app's tag; keys.Keys.trace_of builds the same, test_trace.py checks).
    """
    code = body(path.read_text(encoding="utf-8"))
    assert CALL.search(code), f"{path.name} makes no redis.call"
    lib_params = {"groups_key", "ready_key", "schedidx_key", "sched_key", "outcomes_key", "stats_key", "key"}
    lib_params |= {"versions_key", "ends_key", "replies_key", "expiry_key", "wake_key", "shard_key"}
    params = frozenset(lib_params) if path.stem == LIB else frozenset()
    assert built_keys(code, params) == [], path.name


def test_key_check_catches_a_key_built_in_lua() -> None:
    """The Lua check flags a key concatenated inside a script or indexed directly, and accepts key locals."""
    code = "local K_R, K_S = KEYS[1], KEYS[2]\nlocal ready_key, sched_key = group_keys(2, gi)\n"
    code += "redis.call('ZREM', K_R, m)\nredis.call('GET', 'imunban:hold')\nredis.call('ZADD', sched_key, 'NX', 1, m)\n"
    code += "redis.call('HSET', ARGV[1] .. ':x', 'f', 1)\nredis.call('ZADD', KEYS[2], 'NX', 1, m)\n"
    code += "local other = KEYS[3]\nredis.call('DEL', K_S, ready_key)\nredis.call('ZCARD', other)\n"
    assert built_keys(code) == [
        "GET 'imunban:hold'", "HSET ARGV[1] .. ':x'", "ZADD KEYS[2]", "ZCARD other",
    ]  # fmt: skip


@pytest.mark.parametrize("name", SCRIPTS)
def test_lib_helpers_are_given_keys_from_KEYS(name: str) -> None:
    """Calls of _lib's reindex(), reindex_sched() and emit_outcome() pass key locals for their key parameters."""
    code = body((LUA / f"{name}.lua").read_text(encoding="utf-8"))
    aliases = key_aliases(code)
    for helper, count in LIB_KEY_ARGS.items():
        for call in re.finditer(rf"\b{helper}\(([^\n]*)", code):
            assert set(first_args(call[1], count)) <= aliases, call[0]


def test_lib_constants_match_python() -> None:
    """_lib.lua's separator, high-priority band and full batch equal keys.SEP, HIGH_BAND_MS and MAX_MEMBERS."""
    lib = (LUA / f"{LIB}.lua").read_text(encoding="utf-8")
    sep = re.search(r"local SEP = '\\(\d+)'", lib)
    assert sep is not None and chr(int(sep[1])) == SEP
    band = re.search(r"local HIGH_BAND = (\d+)", lib)
    assert band is not None and int(band[1]) == HIGH_BAND_MS
    full = re.search(r"local FULL_BATCH = (\d+)", lib)
    assert full is not None and int(full[1]) == MAX_MEMBERS


#: Commands that change data (the scripts use no others that write).
WRITES = {
    "SET", "GETEX", "DEL", "PEXPIRE", "HSET", "HDEL", "HINCRBY", "ZADD", "ZREM", "ZPOPMIN", "ZREMRANGEBYSCORE",
    "ZREMRANGEBYRANK", "XADD", "LPUSH", "LTRIM", "FLUSHDB",
}  # fmt: skip
#: _lib.lua helpers that write.
WRITING_HELPERS = (
    "reindex", "reindex_sched", "emit_outcome", "admit_version", "version_ended", "reply_put", "pace_count", "wake",
)  # fmt: skip
#: Intake: a full Redis refuses these before they store anything (SPEC §2).
INTAKE_SCRIPTS = {"enqueue", "cancel", "dead_replay", "reschedule"}
FIRST_WRITE = re.compile(
    rf"^(?P<indent>[ \t]*)(?:local [^=]*= *|return )?(?:redis\.p?call\(\s*'(?P<cmd>\w+)'|"
    rf"(?P<helper>refuse_if_full|proceed_when_full|{'|'.join(WRITING_HELPERS)})\()",
    re.MULTILINE,
)


def first_write(code: str) -> tuple[str, bool] | None:
    """The script's first write (a write command, or a writing _lib helper) and whether it is unconditional."""
    for found in FIRST_WRITE.finditer(code):
        name = found["helper"] or found["cmd"].upper()
        if found["helper"] or name in WRITES:
            return name, found["indent"] == ""
    return None


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_full_redis_refuses_intake_and_lets_everything_else_through(name: str) -> None:
    """Redis checks maxmemory only at a script's first write: intake's first write is refuse_if_full, every other
    script's (delivery, maintenance, holds, operators) is an unconditional proceed_when_full, or it writes nothing."""
    found = first_write(body((LUA / f"{name}.lua").read_text(encoding="utf-8")))
    if name in INTAKE_SCRIPTS:
        assert found == ("refuse_if_full", True), f"{name}.lua must call refuse_if_full before any other write"
    else:
        assert found in (None, ("proceed_when_full", True)), f"{name}.lua: first write {found}, not proceed_when_full"


def test_first_write_check_sees_conditional_and_helper_writes() -> None:
    """The check above finds the first write, also through a helper or inside a branch."""
    assert first_write("local x = redis.call('HGET', K, 'f')\nif x then\n  redis.call('ZREM', K, x)\nend\n") == (
        "ZREM",
        False,
    )
    assert first_write("local n = redis.call('ZCARD', K)\nreply_put(K_R, K_E, id, out, 1, now)\n") == (
        "reply_put",
        True,
    )
    assert first_write("proceed_when_full(K_STATS)\nredis.call('HSET', K_STATS, 'a', 1)\n") == (
        "proceed_when_full",
        True,
    )
    assert first_write("return redis.call('ZADD', K, 'XX', 1, m)\n") == ("ZADD", True)
    assert first_write("return redis.call('ZRANGE', K, 0, -1)\n") is None


def test_lib_touches_no_key_of_its_own() -> None:
    """_lib.lua defines helpers only: no top-level redis.call."""
    lib = body((LUA / f"{LIB}.lua").read_text(encoding="utf-8"))
    top_level = [line for line in lib.splitlines() if line.startswith("redis.")]
    assert top_level == []


def test_every_registered_script_exists() -> None:
    """Each register(client, "name") names an existing lua/name.lua: the engine's, or the demo's with package=."""
    engine, demo = set(), set()
    for path in WORKER.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        engine |= set(re.findall(r"\bregister\(\s*[\w.]+\s*,\s*\"(\w+)\"\s*\)", text))
        demo |= set(re.findall(r"\bregister\(\s*[\w.]+\s*,\s*\"(\w+)\"\s*,\s*package=LUA_PACKAGE\s*\)", text))
    assert len(engine) >= 15 and demo
    assert engine <= set(SCRIPTS)
    assert demo <= set(DEMO_SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_loaded_source_is_lib_plus_script(name: str) -> None:
    """scripts.lua_source prepends _lib.lua to the script; lib_lines() is where the script starts."""
    source = lua_source("imunban", name)
    script = (LUA / f"{name}.lua").read_text(encoding="utf-8")
    assert source.startswith((LUA / f"{LIB}.lua").read_text(encoding="utf-8"))
    assert source.endswith(script)
    assert source.splitlines()[lib_lines()] == script.splitlines()[0]


@pytest.mark.parametrize("name", DEMO_SCRIPTS)
def test_demo_scripts_load_without_lib(name: str) -> None:
    assert lua_source("imunban.demo", name) == (DEMO_LUA / f"{name}.lua").read_text(encoding="utf-8")
    assert lib_lines("imunban.demo") == 0


def test_redis_error_lines_are_offset_by_lib_lines(r: redis.Redis) -> None:
    """As scripts.py says: a Redis error at line N of a script file reports user_script:(N + lib_lines())."""
    with pytest.raises(redis.ResponseError, match=rf"user_script:{lib_lines() + 2}:"):
        r.eval(_lib_plus("local x = 1\nreturn x + nil\n"), 0)


def _lib_plus(script: str) -> str:
    """``script`` after _lib.lua, joined as scripts.lua_source joins them."""
    return (LUA / f"{LIB}.lua").read_text(encoding="utf-8") + "\n" + script


# -- Lua and Python read the same records --------------------------------------------------------


def run_lib(r: redis.Redis, code: str, *args: str | int) -> Any:
    """Run ``code`` after _lib.lua, as every script runs."""
    return r.eval(_lib_plus(code), 0, *args)


@pytest.mark.parametrize("record", ["3|1700000000000|70001|1699999990000", "0|5|-1|7", "12|1|0|1700000000123"])
def test_meta_parsers_agree(r: redis.Redis, record: str) -> None:
    """_lib.lua's parse_meta and stats.parse_meta read a meta record alike."""
    attempts, first, code, due = run_lib(r, "return {parse_meta(ARGV[1])}", record)
    assert parse_meta(record) == Meta(attempts, first, int(code), due)
    assert run_lib(r, "return parse_meta(false)") == 0 and parse_meta(None) is None


@pytest.mark.parametrize("record", ["abc|1700000000000|1", "t|5|0"])
def test_lease_parsers_agree(r: redis.Redis, record: str) -> None:
    """_lib.lua's parse_lease and stats.parse_lease read a lease record alike."""
    token, due, high = run_lib(r, "return {parse_lease(ARGV[1], 0)}", record)
    assert parse_lease(record) == Lease(token, due, high == "1")


@pytest.mark.parametrize(("due", "high"), [(1_700_000_000_000, True), (1_700_000_000_000, False), (0, False)])
def test_ready_score_round_trips(r: redis.Redis, due: int, high: bool) -> None:
    code = "local d, h = decode_ready_score(ready_score(tonumber(ARGV[1]), ARGV[2] == '1')) return {d, h and 1 or 0}"
    assert run_lib(r, code, due, int(high)) == [due, int(high)]


# -- the Python side of script calls -------------------------------------------------------------


def test_script_keys_builds_the_spec_with_per_group_pairs() -> None:
    k = Keys("p")
    assert script_keys(k, "ack") == [
        k.stats, k.meta, k.inflight, k.leases, k.versions, k.version_ends, k.outcomes, k.trace, k.dead, k.dead_info,
        k.ok_groups, k.replies, k.reply_expiry,
    ]  # fmt: skip
    assert script_keys(k, "claim", ["g"]) == [
        k.groups, k.stats, k.high, k.meta, k.inflight, k.leases, k.hold, k.pause, k.replies, k.reply_expiry,
        k.ready("g"),
    ]  # fmt: skip
    assert script_keys(k, "reap", ["a", "b"]) == [
        k.schedidx, k.stats, k.high, k.inflight, k.leases,
        k.ready("a"), k.sched_group("a"), k.ready("b"), k.sched_group("b"),
    ]  # fmt: skip


def test_group_args_packs_groups_once_and_tuples_by_index() -> None:
    packed = GroupArgs()
    packed.add("g1", ["a", "b"], "", "0")
    packed.add("g2", ["c"], 5, "1")
    packed.add("g1", ["d"], "", "0")
    assert packed.groups == {"g1": 1, "g2": 2}
    assert packed.argv() == [2, "g1", "g2", 1, "a", "", "0", 1, "b", "", "0", 2, "c", 5, "1", 1, "d", "", "0"]


# -- the Python side -----------------------------------------------------------------------------


def key_literals(source: str) -> list[str]:
    """String literals in ``source`` that look like key names: f-strings using the prefix, or ':stats'-like text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            used |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            if {"prefix", "key_prefix"} & used and ":" in text:
                found.append(text)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and KEYISH.search(node.value.strip()):
            found.append(node.value)
    return found


def test_keys_are_built_only_in_keys_py() -> None:
    """No module but worker/keys.py formats a key: no f-string with the prefix, no literal like ':stats'."""
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in sorted(WORKER.rglob("*.py"))
        if path != WORKER / "keys.py" and (hits := key_literals(path.read_text(encoding="utf-8")))
    }
    assert not offenders


def test_keys_check_catches_a_key_built_elsewhere() -> None:
    """The check above does flag the patterns it looks for, and not ordinary text."""
    assert key_literals('k = f"{self.prefix}:stats"') == ["{}:stats", ":stats"]
    assert key_literals('j = prefix + ":ready:" + g') == [":ready:"]
    assert key_literals('k = "imunban:hold"') == ["imunban:hold"]
    assert key_literals('log.info("ready: %d", n); x = f"{group}{SEP}{slot}"') == []


def built_by(k: Keys) -> list[str]:
    """Every key ``k`` builds: its properties, and the per-group and limiter keys."""
    built = [getattr(k, name) for name in dir(Keys) if isinstance(getattr(Keys, name), property) and name != "tag"]
    return [*built, k.ready("g"), k.sched_group("g"), k.limiter(1400000000)]


def test_every_key_carries_the_app_tag_or_the_deployment_tag() -> None:
    """Every key of an app starts with its hash tag '{prefix:app}:'; the few deployment keys with '{prefix}:'."""
    k = Keys("p1", "cn")
    built = built_by(k)
    deployment = {k.workers, k.migrate_lock, k.migrating, k.deployment_stats, k.apps_seen}
    assert len(built) >= 15
    assert all(key.startswith("{p1:cn}:") for key in built if key not in deployment)
    assert all(key.startswith("{p1}:") for key in deployment)
    assert len(set(built)) == len(built)
    assert set(built) & set(built_by(Keys("p1", "intl"))) == deployment, "two apps share only deployment keys"


def test_keys_docstring_lists_every_key() -> None:
    """The data-model table in keys.py documents every key the class builds (t: the app's tag, d: the deployment's)."""
    doc = keys_module.__doc__ or ""
    k = Keys("p")
    for name in dir(Keys):
        if isinstance(getattr(Keys, name), property) and name != "tag":
            key = getattr(k, name).replace("{p:default}", "t").replace("{p}", "d")
            assert f"``{key}``" in doc, name
    assert "``t:sched:{group}``" in doc and "``t:ready:{group}``" in doc and "``t:limiter:{sdkappid}``" in doc


def test_single_app_layout_builds_the_names_before_several_apps() -> None:
    """migrate.py reads the old names: 'prefix:name', no hash tag, the same for deployment keys."""
    old = Keys.single_app_layout("imunban")
    assert (old.stats, old.sched_group("g"), old.ready("g"), old.limiter(7)) == (
        "imunban:stats", "imunban:sched:g", "imunban:ready:g", "imunban:limiter:7",
    )  # fmt: skip
    assert old.workers == "imunban:workers" and old.dead_info == "imunban:dead:info"


@pytest.mark.parametrize(("group", "member"), [("g", "m"), ("@TGS#abc", "user:1"), ("a b", "c~d")])
def test_request_id_round_trips(group: str, member: str) -> None:
    """request_id joins with SEP and split_request_id undoes it."""
    assert split_request_id(request_id(group, member)) == (group, member)
