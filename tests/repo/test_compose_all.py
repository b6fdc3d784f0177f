"""Every compose file (single host, apps file, Sentinel, Cluster): real commands, healthchecks, rotated logs,
limits, pinned images, and no password in any environment variable or command line. No Docker engine needed."""

from __future__ import annotations

import re
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from imunban.apps import parse_apps_file
from imunban.cli import build_parser
from imunban.local.redis_server import free_port, redis_server_binary
from imunban.redis_url import parse_cluster_url, url_has_password
from imunban.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FILES = ("docker-compose.yml", "docker-compose.apps.yml", "docker-compose.ha.yml", "docker-compose.cluster.yml")
VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}")
#: Environment variable names that would hold a secret inline (a *_FILE variable names a file instead).
SECRET_NAME = re.compile(r"PASSWORD|PASS\b|AUTH|TOKEN|SECRET", flags=re.IGNORECASE)


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(params=FILES)
def compose(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """(file name, parsed compose file), once per compose file."""
    return request.param, _load(request.param)


def _argv(service: dict[str, Any]) -> list[str]:
    return [str(p) for p in service.get("entrypoint", ["imunban"]) + service.get("command", [])]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {str(k): str(v) for k, v in env.items()}


def test_built_services_run_real_commands(compose: tuple[str, dict[str, Any]]) -> None:
    """Each service built here runs `imunban COMMAND ...` that the CLI's parser accepts."""
    name, data = compose
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    built = {n: s for n, s in data["services"].items() if "build" in s}
    assert "worker" in built, name
    for service_name, service in built.items():
        argv = _argv(service)
        assert scripts.get(argv[0]) == "imunban.cli:main", (name, service_name)
        assert build_parser().parse_args(argv[1:]).command == argv[1], (name, service_name)


def test_every_long_running_service_has_a_healthcheck(compose: tuple[str, dict[str, Any]]) -> None:
    """Healthchecks everywhere: the worker runs `imunban status --check`, the console asks /readyz, the simulator
    connects to its own port; only one-shots (restart "no") have none."""
    name, data = compose
    for service_name, service in data["services"].items():
        if service.get("restart") == "no":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name}: {service_name} has no healthcheck"
    services = data["services"]
    worker_test = services["worker"]["healthcheck"]["test"]
    assert worker_test == ["CMD", "imunban", "status", "--check"]
    assert build_parser().parse_args(worker_test[2:]).command == "status"
    if "web" in services:
        assert "http://127.0.0.1:8321/readyz" in " ".join(services["web"]["healthcheck"]["test"])
        assert "8321" in _argv(services["web"])
    if "simulator" in services:
        argv = _argv(services["simulator"])
        port = argv[argv.index("--port") + 1]
        assert f"('127.0.0.1', {port})" in " ".join(services["simulator"]["healthcheck"]["test"])


def test_logs_rotate_and_resources_are_limited(compose: tuple[str, dict[str, Any]]) -> None:
    """Every service logs to json-file with max-size and max-file, and has a memory and CPU limit."""
    name, data = compose
    for service_name, service in data["services"].items():
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", (name, service_name)
        assert {"max-size", "max-file"} <= set(logging.get("options", {})), (name, service_name)
        assert service.get("mem_limit") and service.get("cpus"), f"{name}: {service_name} has no resource limits"


def test_images_are_pinned(compose: tuple[str, dict[str, Any]]) -> None:
    """Every image pulled names an exact version (redis:7.x.y), never latest or a bare major."""
    name, data = compose
    for service_name, service in data["services"].items():
        if "build" in service:
            continue
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", str(service["image"])), (name, service_name)


def test_no_password_in_any_environment_or_command(compose: tuple[str, dict[str, Any]]) -> None:
    """Passwords, keys and tokens come from secret files: no inline secret variable, no URL with a password,
    no password interpolated from .env, no password argument on any command line."""
    name, data = compose
    text = (ROOT / name).read_text()
    assert not [v for v in VAR_RE.findall(text) if SECRET_NAME.search(v)], name
    assert "REDISCLI_AUTH" not in text and "--requirepass" not in text and "--masterauth" not in text
    for service_name, service in data["services"].items():
        for variable, value in _env(service).items():
            if SECRET_NAME.search(variable):
                assert variable.endswith("_FILE") and value.startswith("/run/secrets/"), (name, service_name, variable)
            if "://" in value:
                assert not url_has_password(value), (name, service_name, variable)
        command = " ".join(_argv(service) + [str(t) for t in service.get("healthcheck", {}).get("test", [])])
        assert not re.search(r"(^|\s)(-a|--pass|--password)\s", command), (name, service_name)
        for secret in service.get("secrets", []):
            assert data["secrets"][secret]["file"] == f"./secrets/{secret}", (name, secret)


def test_every_variable_is_in_env_example(compose: tuple[str, dict[str, Any]]) -> None:
    """Every ${VAR} a compose file interpolates is defined in .env.example."""
    name, _ = compose
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert not set(VAR_RE.findall((ROOT / name).read_text())) - defined, name


def test_apps_file_recipe() -> None:
    """docker-compose.apps.yml mounts an apps file (deploy/apps.example.toml is a valid one) and gives the workers
    one secret per app, at the path that app's secret_key_file names; the console gets no key."""
    data = _load("docker-compose.apps.yml")
    worker, web = data["services"]["worker"], data["services"]["web"]
    for service in (worker, web):
        assert _env(service)["IMUNBAN_APPS_FILE"] == "/etc/imunban/apps.toml"
        assert "./apps.toml:/etc/imunban/apps.toml:ro" in service["volumes"]
    apps = parse_apps_file(ROOT / "deploy" / "apps.example.toml")
    assert len(apps.names) >= 2
    for app in apps:
        assert app.secret_key_file is not None and app.secret_key_file.parent == Path("/run/secrets")
        assert app.secret_key_file.name in worker["secrets"], app.name
        assert app.secret_key_file.name not in web["secrets"]


def test_cluster_recipe() -> None:
    """docker-compose.cluster.yml: 6 cluster nodes joined by a one-shot (3 masters + 3 replicas), the broker on its
    own plain Redis, and workers whose settings put the state on the cluster and the queues on the broker."""
    data = _load("docker-compose.cluster.yml")
    services = data["services"]
    nodes = [n for n, s in services.items() if "--cluster-enabled" in _argv(s)]
    assert len(nodes) == 6
    create = services["cluster-create"]
    assert create["restart"] == "no" and set(create["depends_on"]) == set(nodes)
    script = "\n".join(create["command"])
    assert "--cluster create" in script and "--cluster-replicas 1" in script and "--cluster-yes" in script
    assert "--cluster-enabled" not in _argv(services["broker"])
    for name in ("worker", "web"):
        env = _env(services[name])
        env.pop("IMUNBAN_SECRET_KEY_FILE", None)
        env = {k: v for k, v in env.items() if not k.startswith("IMUNBAN_WEB_")}
        settings = Settings.from_env(env)
        assert settings.durable_replicas == 0
        seeds = {host for host, _ in parse_cluster_url(str(settings.redis_url)).nodes}
        assert seeds <= set(nodes)
        assert settings.broker_url == "redis://broker:6379/0"
        assert services[name]["depends_on"]["cluster-create"]["condition"] == "service_completed_successfully"


def test_redis_conf_runs_and_requires_the_password(tmp_path: Path) -> None:
    """deploy/redis/redis.conf, with the auth file start.sh writes, starts a real redis-server that is durable,
    never evicts and refuses clients without the password."""
    auth = tmp_path / "redis-auth.conf"
    auth.write_text("requirepass c0mposepw\nmasterauth c0mposepw\n")
    conf = (ROOT / "deploy" / "redis" / "redis.conf").read_text()
    conf = conf.replace("include /tmp/redis-auth.conf", f"include {auth}").replace("dir /data", f"dir {tmp_path}")
    (tmp_path / "redis.conf").write_text(conf)
    port = free_port()
    args = [redis_server_binary(), str(tmp_path / "redis.conf"), "--port", str(port), "--bind", "127.0.0.1"]
    server = subprocess.Popen([*args, "--maxmemory", "10mb"], stdout=subprocess.DEVNULL)
    try:
        with redis.Redis(port=port, password="c0mposepw", decode_responses=True) as client:
            for _ in range(200):  # until the server listens (it fails the test below if it never does)
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            config = client.config_get("*")
            assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
            assert config["maxmemory-policy"] == "noeviction" and int(config["maxmemory"]) == 10 * 1024 * 1024
        with redis.Redis(port=port) as anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        server.terminate()
        server.wait(10)
