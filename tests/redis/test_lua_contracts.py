"""Static checks of the key layout and the Lua scripts: documented headers, keys only from KEYS/keys.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from imunban import keys as keys_module
from imunban.keys import HIGH_BAND_MS, SEP, Keys, request_id, split_request_id
from imunban.scripts import LIB, lua_source
from imunban.store import MAX_BATCH

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker" / "imunban"
LUA = WORKER / "lua"
SCRIPTS = sorted(p.stem for p in LUA.glob("*.lua") if p.stem != LIB)

#: Redis commands the scripts may use -> how many leading arguments are key names.
KEY_ARGS = {
    "TIME": 0, "DBSIZE": 0, "FLUSHDB": 0,
    "GET": 1, "SET": 1, "DEL": 1, "EXISTS": 1, "PEXPIRE": 1,
    "HGET": 1, "HSET": 1, "HDEL": 1, "HEXISTS": 1, "HINCRBY": 1,
    "ZADD": 1, "ZREM": 1, "ZSCORE": 1, "ZCARD": 1, "ZRANGE": 1, "ZPOPMIN": 1,
    "ZREMRANGEBYSCORE": 1, "ZREMRANGEBYRANK": 1,
    "XADD": 1,
}  # fmt: skip
CALL = re.compile(r"redis\.p?call\(\s*'(?P<cmd>\w+)'\s*(?:,\s*(?P<args>[^\n]*))?")
KEY_NAMES = "schedidx|sched|groups|ready|inflight|leases|meta|high|dead|outcomes|stats|hold|limiter|dispatch|e10007"
KEYISH = re.compile(rf"(^|[\w.-]*):({KEY_NAMES})(:|$)")


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


# -- the scripts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_starts_with_a_header_naming_keys_and_argv(name: str) -> None:
    """Each script opens with comments naming itself, every KEYS/ARGV slot it uses, and what it returns."""
    text = (LUA / f"{name}.lua").read_text(encoding="utf-8")
    head, code = header(text), body(text)
    assert head.startswith(f"-- {name}: "), f"{name}.lua must start with '-- {name}: <what it does>'"
    assert "Returns" in head
    for kind in ("KEYS", "ARGV"):
        used = {int(i) for i in re.findall(rf"{kind}\[(\d+)\]", code)}
        if re.search(rf"{kind}\[", code):
            assert f"{kind}[" in head, f"{name}.lua uses {kind} without documenting it"
        undocumented = sorted(i for i in used if not covered(i, head, kind))
        assert not undocumented, f"{name}.lua: {kind}{undocumented} not described in the header"


def built_keys(code: str, params: frozenset[str] = frozenset()) -> list[str]:
    """Key arguments of redis.call that are not KEYS[...], a local alias of one, or an allowed parameter."""
    aliases = set(re.findall(r"local (\w+) = KEYS\[[^\]]+\]\s*$", code, re.MULTILINE)) | params
    bad = []
    for call in CALL.finditer(code):
        cmd = call["cmd"].upper()
        assert cmd in KEY_ARGS, f"{cmd} is not in KEY_ARGS; add it with the number of its key arguments"
        for arg in first_args(call["args"] or "", KEY_ARGS[cmd]):
            if not (re.fullmatch(r"KEYS\[[^\]]+\]", arg) or arg in aliases):
                bad.append(f"{cmd} {arg}")
    return bad


@pytest.mark.parametrize("name", [*SCRIPTS, LIB])
def test_every_redis_call_takes_its_keys_from_KEYS(name: str) -> None:
    """No script builds a key name: every key argument of redis.call comes from KEYS (or _lib's parameters)."""
    code = body((LUA / f"{name}.lua").read_text(encoding="utf-8"))
    assert CALL.search(code), f"{name}.lua makes no redis.call"
    params = frozenset({"groups_key", "ready_key", "schedidx_key", "sched_key"}) if name == LIB else frozenset()
    assert built_keys(code, params) == [], name


def test_key_check_catches_a_key_built_in_lua() -> None:
    """The Lua check flags a key concatenated inside a script, and accepts KEYS and aliases of it."""
    code = "local r = KEYS[5 + gi]\nredis.call('ZREM', r, m)\nredis.call('GET', 'imunban:hold')\n"
    code += "redis.call('HSET', ARGV[1] .. ':x', 'f', 1)\nredis.call('ZADD', KEYS[2], 'NX', 1, m)\n"
    assert built_keys(code) == ["GET 'imunban:hold'", "HSET ARGV[1] .. ':x'"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_lib_helpers_are_given_keys_from_KEYS(name: str) -> None:
    """Calls of the shared reindex() and reindex_sched() helpers pass KEYS[...] for their key parameters."""
    code = body((LUA / f"{name}.lua").read_text(encoding="utf-8"))
    for call in re.finditer(r"\breindex(?:_sched)?\(([^\n]*)", code):
        groups_key, ready_key = first_args(call[1], 2)
        assert re.fullmatch(r"KEYS\[[^\]]+\]", groups_key) and re.fullmatch(r"KEYS\[[^\]]+\]", ready_key)


def test_lib_constants_match_python() -> None:
    """_lib.lua's separator, high-priority band and full batch equal keys.SEP, HIGH_BAND_MS and MAX_BATCH."""
    lib = (LUA / f"{LIB}.lua").read_text(encoding="utf-8")
    sep = re.search(r"local SEP = '\\(\d+)'", lib)
    assert sep is not None and chr(int(sep[1])) == SEP
    band = re.search(r"local HIGH_BAND = (\d+)", lib)
    assert band is not None and int(band[1]) == HIGH_BAND_MS
    full = re.search(r"local FULL_BATCH = (\d+)", lib)
    assert full is not None and int(full[1]) == MAX_BATCH


def test_lib_touches_no_key_of_its_own() -> None:
    """_lib.lua defines helpers only: no top-level redis.call."""
    lib = body((LUA / f"{LIB}.lua").read_text(encoding="utf-8"))
    top_level = [line for line in lib.splitlines() if line.startswith("redis.")]
    assert top_level == []


def test_every_registered_script_exists() -> None:
    """Each register(client, "name") in worker/ names an existing lua/name.lua."""
    registered = set()
    for path in WORKER.rglob("*.py"):
        registered |= set(re.findall(r"\bregister\(\s*\w+\s*,\s*\"(\w+)\"", path.read_text(encoding="utf-8")))
    assert len(registered) >= 15
    assert registered <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_loaded_source_is_lib_plus_script(name: str) -> None:
    """scripts.lua_source prepends _lib.lua to the script."""
    source = lua_source("imunban", name)
    assert source.startswith((LUA / f"{LIB}.lua").read_text(encoding="utf-8"))
    assert source.endswith((LUA / f"{name}.lua").read_text(encoding="utf-8"))


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


def test_every_key_shares_the_prefix() -> None:
    """Every key Keys builds starts with '<prefix>:' so deployments never collide."""
    k = Keys("p1")
    built = [getattr(k, name) for name in dir(Keys) if isinstance(getattr(Keys, name), property)]
    built += [k.ready("g"), k.sched_group("g"), k.limiter(1400000000)]
    assert len(built) >= 15
    assert all(key.startswith("p1:") for key in built)
    assert len(set(built)) == len(built)


def test_keys_docstring_lists_every_key() -> None:
    """The data-model table in keys.py documents every key the class builds."""
    doc = keys_module.__doc__ or ""
    k = Keys("p")
    for name in dir(Keys):
        if isinstance(getattr(Keys, name), property):
            assert f"``{getattr(k, name)}``" in doc, name
    assert "``p:sched:{group}``" in doc and "``p:ready:{group}``" in doc and "``p:limiter:{sdkappid}``" in doc


@pytest.mark.parametrize(("group", "member"), [("g", "m"), ("@TGS#abc", "user:1"), ("a b", "c~d")])
def test_request_id_round_trips(group: str, member: str) -> None:
    """request_id joins with SEP and split_request_id undoes it."""
    assert split_request_id(request_id(group, member)) == (group, member)
