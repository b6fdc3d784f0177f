"""Load the ``.lua`` files beside a module and register each once per Redis client.

Every script is prefixed with ``lua/_lib.lua`` (shared helpers such as the server clock and the
group re-index), so each file holds exactly one atomic operation and no helper is written twice.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

LIB = "_lib"


@cache
def lua_source(package: str, name: str) -> str:
    """Return ``_lib.lua`` + ``{name}.lua`` from ``{package}/lua`` (cached: files never change at run time)."""
    folder = resources.files(package) / "lua"
    lib = folder / f"{LIB}.lua"
    prefix = lib.read_text(encoding="utf-8") + "\n" if lib.is_file() else ""
    return prefix + (folder / f"{name}.lua").read_text(encoding="utf-8")


def register(client: redis.Redis, name: str, package: str = "imunban") -> Script:
    """Register one script with ``client``; redis-py runs it by EVALSHA and falls back to EVAL on NOSCRIPT."""
    return client.register_script(lua_source(package, name))
