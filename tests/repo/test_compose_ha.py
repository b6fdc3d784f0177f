"""docker-compose.ha.yml: Sentinel (1 primary, 2 replicas, 3 sentinels) and durable workers, no Docker engine needed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from imunban.cli import build_parser
from imunban.redis_url import parse_sentinel_url
from imunban.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}")
NODES = ("redis-primary", "redis-replica-1", "redis-replica-2")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.ha.yml parsed."""
    data = yaml.safe_load((ROOT / "docker-compose.ha.yml").read_text())
    assert isinstance(data, dict)
    return data


def _substituted(text: str) -> str:
    """``text`` with every ${VAR...} replaced by a plausible value, as compose would."""
    return VAR_RE.sub(lambda m: "secret123" if "PASSWORD" in m.group(1) else "x", text)


def _pairs(command: list[Any]) -> dict[str, str]:
    parts = [str(part) for part in command]
    return dict(zip(parts[1::2], parts[2::2], strict=False))


def test_topology(compose: dict[str, Any]) -> None:
    """Three Redis nodes, three sentinels, the worker and the dev-only simulator; nothing published on the host."""
    services = compose["services"]
    assert set(NODES) | set(SENTINELS) | {"worker", "simulator"} == set(services)
    for name, service in services.items():
        assert "ports" not in service, name
    assert services["simulator"]["profiles"] == ["dev"]


def test_redis_nodes_durable_and_replicating(compose: dict[str, Any]) -> None:
    """Every node: AOF everysec, noeviction, a password for clients and replication; two replicate the primary."""
    for name in NODES:
        node = compose["services"][name]
        pairs = _pairs(node["command"])
        assert pairs["--appendonly"] == "yes" and pairs["--appendfsync"] == "everysec", name
        assert pairs["--maxmemory-policy"] == "noeviction", name
        assert VAR_RE.search(pairs["--requirepass"]) and VAR_RE.search(pairs["--masterauth"]), name
        assert pairs["--replica-announce-ip"] == name
        volume = node["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], name
    replicas = [name for name in NODES if "--replicaof" in [str(p) for p in compose["services"][name]["command"]]]
    assert replicas == ["redis-replica-1", "redis-replica-2"]
    for name in replicas:
        command = [str(p) for p in compose["services"][name]["command"]]
        assert command[command.index("--replicaof") + 1 : command.index("--replicaof") + 3] == ["redis-primary", "6379"]


def test_sentinels_monitor_the_primary_with_quorum_two(compose: dict[str, Any]) -> None:
    """Each sentinel writes its conf (monitor imunban redis-primary 6379 2, passwords) and runs --sentinel."""
    for name in SENTINELS:
        sentinel = compose["services"][name]
        assert sentinel["image"].startswith("redis:7")
        script = "\n".join(str(part) for part in sentinel["command"])
        assert "sentinel monitor imunban redis-primary 6379 2" in script
        assert "sentinel auth-pass imunban ${IMUNBAN_REDIS_PASSWORD" in script
        assert "requirepass ${IMUNBAN_SENTINEL_PASSWORD" in script
        assert "--sentinel" in script and "exec redis-server /data/sentinel.conf" in script
        assert sentinel["hostname"] == name


def test_worker_uses_the_sentinel_url_and_durable_intake(compose: dict[str, Any]) -> None:
    """The worker runs `imunban worker` on a redis+sentinel:// URL naming all three sentinels, with WAIT 1."""
    worker = compose["services"]["worker"]
    argv = [str(p) for p in worker["entrypoint"] + worker["command"]]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts and scripts[argv[0]] == "imunban.cli:main"
    assert build_parser().parse_args(argv[1:]).command == "worker"
    simulator = compose["services"]["simulator"]
    assert build_parser().parse_args([str(p) for p in simulator["command"]]).command == "simulate"
    env = {name: _substituted(str(value)) for name, value in worker["environment"].items()}
    env.pop("IMUNBAN_SECRET_KEY_FILE")  # a container path, not on this machine
    settings = Settings.from_env(env)
    assert settings.durable_replicas == 1
    assert settings.sentinel_password is not None
    parsed = parse_sentinel_url(str(settings.redis_url))
    assert parsed.sentinels == tuple((name, 26379) for name in SENTINELS)
    assert parsed.service == "imunban" and parsed.password == "secret123"
    assert int(worker["deploy"]["replicas"]) >= 2
    assert "IMUNBAN_SECRET_KEY" not in worker["environment"]


def test_every_variable_is_in_env_example() -> None:
    """Every ${VAR} the HA compose file interpolates is defined in .env.example."""
    used = set(VAR_RE.findall((ROOT / "docker-compose.ha.yml").read_text()))
    assert {"IMUNBAN_REDIS_PASSWORD", "IMUNBAN_SENTINEL_PASSWORD"} <= used
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert not used - defined, f"define in .env.example: {sorted(used - defined)}"
