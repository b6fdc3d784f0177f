"""docker-compose.yml, the Dockerfile and .env.example agree with the package (no Docker engine needed)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from imunban.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
#: ${NAME}, ${NAME:-default}, ${NAME:?error} (not $${...}, which compose leaves to the container).
VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml parsed."""
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _env_example() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.MULTILINE))


def _dockerfile_entrypoint() -> list[str]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert match, "the Dockerfile has no exec-form ENTRYPOINT"
    entrypoint = yaml.safe_load(match.group(1))
    assert isinstance(entrypoint, list)
    return entrypoint


def _argv(service: dict[str, Any]) -> list[str]:
    """What the container runs: its entrypoint (the service's, else the image's) followed by its command."""
    entrypoint = service.get("entrypoint", _dockerfile_entrypoint())
    command = service.get("command", [])
    assert isinstance(entrypoint, list) and isinstance(command, list), "use exec form (lists), not shell strings"
    return [str(part) for part in entrypoint + command]


def _imunban_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def test_services_present(compose: dict[str, Any]) -> None:
    """redis, worker, simulator, web and the monitoring services are defined; imunban's are built from here."""
    assert {"redis", "worker", "simulator", "web", "exporter", "prometheus", "grafana"} <= set(compose["services"])
    assert set(_imunban_services(compose)) == {"worker", "simulator", "web", "exporter"}


def test_dockerfile_installs_package_as_non_root() -> None:
    """A pinned python:3.11.x-slim-bookworm, pip install ., a numeric non-root USER with a passwd entry, `imunban`."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm\s*$", text, flags=re.MULTILINE)
    assert re.search(r"^RUN pip install .*\.", text, flags=re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and re.fullmatch(r"(\d+)(:\d+)?", users[-1]), "USER must be numeric (runAsNonRoot checks a number)"
    uid = users[-1].split(":")[0]
    assert int(uid) != 0
    assert re.search(rf"useradd [^\n]*--uid {uid}\b", text), "a passwd entry with the same uid"
    assert _dockerfile_entrypoint() == ["imunban"]
    ignored = (ROOT / ".dockerignore").read_text()
    assert "!worker/" in ignored and "*" in ignored.splitlines(), "the build context must not carry secrets/ or .env"


def test_commands_are_real_entry_points(compose: dict[str, Any]) -> None:
    """Each built service runs the `imunban` script with a sub-command and arguments the CLI accepts."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    parser = build_parser()
    for name, service in _imunban_services(compose).items():
        argv = _argv(service)
        assert argv[0] in scripts, f"{name}: {argv[0]!r} is not a [project.scripts] entry"
        assert scripts[argv[0]] == "imunban.cli:main"
        args = parser.parse_args(argv[1:])  # exits (fails the test) on an unknown sub-command or option
        assert args.command == argv[1], name
    assert _argv(compose["services"]["worker"])[1] == "worker"
    assert _argv(compose["services"]["simulator"])[1] == "simulate"
    assert _argv(compose["services"]["web"])[1] == "web"
    assert _argv(compose["services"]["exporter"])[1] == "exporter"


def test_redis_private_durable_and_password_protected(compose: dict[str, Any]) -> None:
    """redis: deploy/redis (AOF everysec, noeviction, the password from a secret), no host ports, a named volume."""
    redis = compose["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    assert redis["entrypoint"] == ["sh", "/etc/imunban/start.sh"]
    mounts = _mounts(redis)
    conf = mounts["/etc/imunban/redis.conf"].read_text()
    for line in (
        "appendonly yes",
        "appendfsync everysec",
        "maxmemory-policy noeviction",
        "include /tmp/redis-auth.conf",
    ):
        assert re.search(rf"^{line}$", conf, flags=re.MULTILINE), line
    start = mounts["/etc/imunban/start.sh"].read_text()
    assert "/run/secrets/redis_password" in start and "requirepass" in start
    assert redis["secrets"] == ["redis_password"] and "redis_password" in compose["secrets"]
    assert "--maxmemory" in redis["command"]
    assert "ports" not in redis
    assert "ping" in " ".join(redis["healthcheck"]["test"])
    volume = redis["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


#: The services that publish a port, each on the host's loopback only.
PUBLISHED = {"web": "127.0.0.1:8321:8321", "prometheus": "127.0.0.1:9090:9090", "grafana": "127.0.0.1:3000:3000"}


def test_nothing_is_published_on_the_host(compose: dict[str, Any]) -> None:
    """Only the console, Prometheus and Grafana publish a port, on the host's loopback; metrics stay on the network."""
    for name, service in compose["services"].items():
        if name in PUBLISHED:
            assert [str(p) for p in service["ports"]] == [PUBLISHED[name]], name
            continue
        assert "ports" not in service, name
    worker = compose["services"]["worker"]
    assert "9464" in [str(port) for port in worker["expose"]]
    assert str(worker["environment"]["IMUNBAN_METRICS_PORT"]) == "9464"


def test_worker_setup(compose: dict[str, Any]) -> None:
    """worker: replicas, settings from .env, Redis URL with the password, waits for a healthy Redis."""
    worker = compose["services"]["worker"]
    assert int(worker["deploy"]["replicas"]) >= 2
    assert worker["env_file"] == ".env" or ".env" in worker["env_file"]
    assert worker["environment"]["IMUNBAN_REDIS_URL"] == "redis://redis:6379/0"
    assert worker["environment"]["IMUNBAN_REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
    assert "redis_password" in worker["secrets"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_secret_key_is_a_compose_secret(compose: dict[str, Any]) -> None:
    """The secret key reaches the containers as a file secret, never as an environment variable."""
    assert "imunban_secret_key" in compose["secrets"]
    for name, service in _imunban_services(compose).items():
        if name in ("web", "exporter"):  # they sign nothing for the API: they do not get the key at all
            assert "imunban_secret_key" not in service["secrets"]
            assert not any("SECRET_KEY" in variable for variable in service["environment"])
            continue
        assert "imunban_secret_key" in service["secrets"], name
        env = service.get("environment", {})
        assert env.get("IMUNBAN_SECRET_KEY_FILE") == "/run/secrets/imunban_secret_key", name
        assert "IMUNBAN_SECRET_KEY" not in env, name
    assert "IMUNBAN_SECRET_KEY" not in _env_example()


#: Services that run only with a profile (`docker compose --profile NAME up`).
PROFILES = {"simulator": ["dev"], "exporter": ["monitoring"], "prometheus": ["monitoring"], "grafana": ["monitoring"]}


def test_profiles(compose: dict[str, Any]) -> None:
    """The simulator runs only with `--profile dev`, the monitoring kit only with `--profile monitoring`."""
    simulator = compose["services"]["simulator"]
    argv = _argv(simulator)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    for name, service in compose["services"].items():
        if name in PROFILES:
            assert service["profiles"] == PROFILES[name], name
        else:
            assert "profiles" not in service, f"{name} must run without a profile"


def test_every_variable_is_in_env_example() -> None:
    """Every ${VAR} docker-compose.yml interpolates is defined in .env.example."""
    used = set(VAR_RE.findall((ROOT / "docker-compose.yml").read_text()))
    assert "IMUNBAN_REDIS_MAXMEMORY" in used
    missing = used - set(_env_example())
    assert not missing, f"define in .env.example: {sorted(missing)}"


def test_web_console_tokens_are_compose_secrets(compose: dict[str, Any]) -> None:
    """The console's tokens reach it as file secrets; its Redis URL carries the password; it waits for Redis."""
    web = compose["services"]["web"]
    env = web["environment"]
    for role in ("viewer", "operator"):
        secret = f"imunban_web_{role}_token"
        assert secret in compose["secrets"] and secret in web["secrets"]
        assert env[f"IMUNBAN_WEB_{role.upper()}_TOKEN_FILE"] == f"/run/secrets/{secret}"
        assert f"IMUNBAN_WEB_{role.upper()}_TOKEN" not in env
    assert env["IMUNBAN_REDIS_URL"] == "redis://redis:6379/0"
    assert web["depends_on"]["redis"]["condition"] == "service_healthy"
    argv = _argv(web)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # inside its container; published on 127.0.0.1 only


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    """Every image pulled (not built here) names an exact version tag, never latest or a bare major."""
    pulled = {name: str(svc["image"]) for name, svc in compose["services"].items() if "build" not in svc}
    assert {"redis", "prometheus", "grafana"} <= set(pulled)
    for name, image in pulled.items():
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: pin {image!r} to an exact version"


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path -> repository file, for the service's bind mounts of files in this repository."""
    out: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            out[target] = ROOT / source
    return out


def test_monitoring_profile_is_wired(compose: dict[str, Any]) -> None:
    """Prometheus scrapes every worker replica and the exporter on the ports they serve, with the alert rules
    mounted where its config names them; Grafana gets that Prometheus and the dashboard."""
    services = compose["services"]
    prometheus, grafana, exporter, worker = (services[n] for n in ("prometheus", "grafana", "exporter", "worker"))
    mounts = _mounts(prometheus)
    assert all(path.is_file() for path in mounts.values()), mounts
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    for rule_file in config["rule_files"]:
        assert mounts[f"/etc/prometheus/{rule_file}"].name == "alerts.yml"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (dns,) = jobs["imunban"]["dns_sd_configs"]
    assert dns["names"] == ["worker"] and str(dns["port"]) == str(worker["environment"]["IMUNBAN_METRICS_PORT"])
    argv = _argv(exporter)
    port = argv[argv.index("--port") + 1]
    assert jobs["imunban-exporter"]["static_configs"][0]["targets"] == [f"exporter:{port}"]
    assert [str(p) for p in exporter["expose"]] == [port]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert exporter["depends_on"]["redis"]["condition"] == "service_healthy"
    gmounts = _mounts(grafana)
    assert (
        gmounts["/var/lib/grafana/dashboards/imunban.json"] == ROOT / "deploy" / "monitoring" / "grafana-dashboard.json"
    )
    assert all(path.is_file() for path in gmounts.values()), gmounts
    datasources = yaml.safe_load(gmounts["/etc/grafana/provisioning/datasources/imunban.yml"].read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(gmounts["/etc/grafana/provisioning/dashboards/imunban.yml"].read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "grafana_admin_password" in compose["secrets"] and grafana["secrets"] == ["grafana_admin_password"]
