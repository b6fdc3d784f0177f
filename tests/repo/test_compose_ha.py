"""docker-compose.ha.yml: Sentinel (1 primary, 2 replicas, 3 sentinels), durable workers and the console, no Docker
engine needed."""

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


def test_topology(compose: dict[str, Any]) -> None:
    """Three Redis nodes, three sentinels, the worker, the console and the dev-only simulator; only the console is
    published, on the host's loopback."""
    services = compose["services"]
    assert set(NODES) | set(SENTINELS) | {"worker", "web", "simulator"} == set(services)
    for name, service in services.items():
        if name == "web":
            assert service["ports"] == ["127.0.0.1:8321:8321"]
            continue
        assert "ports" not in service, name
    assert services["simulator"]["profiles"] == ["dev"]


def test_redis_nodes_durable_and_replicating(compose: dict[str, Any]) -> None:
    """Every node runs deploy/redis (AOF everysec, noeviction, requirepass and masterauth from the secret);
    two replicate the primary."""
    conf = (ROOT / "deploy" / "redis" / "redis.conf").read_text()
    assert "appendfsync everysec" in conf and "maxmemory-policy noeviction" in conf
    assert "masterauth" in (ROOT / "deploy" / "redis" / "start.sh").read_text()
    for name in NODES:
        node = compose["services"][name]
        assert node["entrypoint"] == ["sh", "/etc/imunban/start.sh"], name
        assert "redis_password" in node["secrets"], name
        pairs = dict(zip(node["command"][::2], node["command"][1::2], strict=False))
        assert pairs["--replica-announce-ip"] == name
        volume = node["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], name
        assert any(str(v).startswith("./deploy/redis/redis.conf:") for v in node["volumes"]), name
    replicas = [name for name in NODES if "--replicaof" in [str(p) for p in compose["services"][name]["command"]]]
    assert replicas == ["redis-replica-1", "redis-replica-2"]
    for name in replicas:
        command = [str(p) for p in compose["services"][name]["command"]]
        assert command[command.index("--replicaof") + 1 : command.index("--replicaof") + 3] == ["redis-primary", "6379"]


def test_sentinels_monitor_the_primary_with_quorum_two(compose: dict[str, Any]) -> None:
    """Each sentinel writes its conf (monitor imunban redis-primary 6379 2, passwords read from the secrets in the
    container) and runs --sentinel."""
    for name in SENTINELS:
        sentinel = compose["services"][name]
        assert sentinel["image"].startswith("redis:7")
        script = "\n".join(str(part) for part in sentinel["command"])
        assert "sentinel monitor imunban redis-primary 6379 2" in script
        assert "sentinel auth-pass imunban $$(cat /run/secrets/redis_password)" in script
        assert "requirepass $$(cat /run/secrets/sentinel_password)" in script
        assert "--sentinel" in script and "exec redis-server /data/sentinel.conf" in script
        assert sentinel["hostname"] == name
        assert {"redis_password", "sentinel_password"} <= set(sentinel["secrets"])


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
    assert str(settings.sentinel_password_file) == "/run/secrets/sentinel_password"
    assert str(settings.redis_password_file) == "/run/secrets/redis_password"
    parsed = parse_sentinel_url(str(settings.redis_url))
    assert parsed.sentinels == tuple((name, 26379) for name in SENTINELS)
    assert parsed.service == "imunban" and parsed.password is None
    assert {"redis_password", "sentinel_password"} <= set(worker["secrets"])
    assert int(worker["deploy"]["replicas"]) >= 2
    assert "IMUNBAN_SECRET_KEY" not in worker["environment"]


def test_every_variable_is_in_env_example() -> None:
    """Every ${VAR} the HA compose file interpolates is defined in .env.example."""
    used = set(VAR_RE.findall((ROOT / "docker-compose.ha.yml").read_text()))
    assert "IMUNBAN_REDIS_MAXMEMORY" in used
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert not used - defined, f"define in .env.example: {sorted(used - defined)}"
