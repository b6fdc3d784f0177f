"""The monitoring kit (deploy/monitoring/) holds: rules pass their promtool unit tests, every query parses and
names only series the project exports, and docs/metrics.md lists exactly the series there are."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily

from helpers import metric_samples
from imunban.metrics import AppReading, PrometheusObserver, RedisCollector, StateCollector, new_registry
from imunban.observe import INTERNAL, TRANSPORT
from imunban.stats import COUNTERS, DEPLOYMENT_COUNTERS
from imunban.vitals import RedisMemory, Vitals

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`; .ci/run installs it)"
)
#: Series Prometheus itself makes for every target.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
#: Grafana's variables, replaced by something PromQL accepts before a query is checked.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$app": ".*"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


class _Readings(RedisCollector):
    """The Redis collector with readings of its own instead of a Redis."""

    def __init__(self) -> None:
        pass

    def read(self) -> tuple[dict[str, AppReading], dict[str, int]]:
        vitals = Vitals(oldest_due_ms=1, workers_alive=1, limiter_use=0.5, memory=RedisMemory(1, 2), now_ms=2)
        snap: dict[str, Any] = {"queued": 1, "scheduled": 1, "in_flight": 1, "dead": 1, "hold": None}
        snap["counters"] = dict.fromkeys(COUNTERS, 1)
        return {"default": AppReading(snap, vitals, 190.0)}, dict.fromkeys(DEPLOYMENT_COUNTERS, 1)


class _State(StateCollector):
    """The state collector with one app in one state instead of a Redis."""

    def __init__(self) -> None:
        pass

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("imunban_state", "state", labels=["app", "state"])
        family.add_metric(["default", "delivering"], 1.0)
        yield family


def exported_names() -> set[str]:
    """Every sample name a worker's scrape shows once each of its events happened (and the exporter's)."""
    observer = PrometheusObserver()
    app = observer.bind("default")
    app.api_call(0, 20, 0.1)
    app.api_call(0, 20, 0.1, TRANSPORT)
    app.api_call(0, 20, 0.1, INTERNAL)
    app.limiter_wait(0.01)
    app.delivered([10])
    app.retried(1)
    app.dead(1, 10004)
    app.group_gone(1)
    app.rejected("imunban.unban")
    observer.registry.register(_Readings())
    observer.registry.register(_State())
    names = {name for name, _ in metric_samples(generate_latest(observer.registry).decode())}
    # The exporter serves new_registry() with the same Redis-read series: nothing it has that a worker lacks.
    assert {name for name, _ in metric_samples(generate_latest(new_registry()).decode())} <= names
    return names | PROMETHEUS_OWN


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not its functions, keywords, labels or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group(0) in PROMQL_WORDS:
            continue  # a function call or a keyword
        names.add(match.group(0))
    return names


def test_metric_names_finds_series_only() -> None:
    """The name finder skips functions, keywords, labels and durations (guards the tests below)."""
    expr = (
        'histogram_quantile(0.99, sum by (app, le) (rate(a_bucket{app=~"x", code!="0"}[5m]))) '
        "/ on (app) group_left max by (app) (b > 0) unless c"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((KIT / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    """Every PromQL query of the dashboard's panels (rows included) and variables, Grafana variables replaced."""
    dashboard = json.loads((KIT / "grafana-dashboard.json").read_text())
    panels = list(dashboard["panels"])
    panels += [inner for panel in dashboard["panels"] for inner in panel.get("panels", [])]
    queries = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict) and (found := re.fullmatch(r"label_values\((.+),\s*\w+\)", query["query"])):
            queries.append(found.group(1))
    out = []
    for query in queries:
        for name, value in GRAFANA_VARIABLES.items():
            query = query.replace(name, value)
        assert "$" not in query, f"an unknown Grafana variable in {query!r}"
        out.append(query)
    return out


def test_alert_rules_cover_the_issue() -> None:
    """The rules alert on: no worker, no live worker, stalled, long holds, the SLO, dead letters, 60007,
    transport failures and Redis memory."""
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "ImunbanWorkersDown", "ImunbanNoLiveWorker", "ImunbanStalled", "ImunbanHeldTooLong", "ImunbanOldestDueOverSLO",
        "ImunbanDeadLetters", "ImunbanRateLimitAnswers", "ImunbanTransportFailures", "ImunbanRedisMemoryHigh",
    } <= names  # fmt: skip
    assert all(rule["labels"]["severity"] in ("critical", "warning") for rule in alert_rules())


def test_rules_and_dashboard_name_only_exported_series() -> None:
    """Every series an alert or a dashboard query names is one the workers or the exporter export."""
    exported = exported_names()
    queries = [rule["expr"] for rule in alert_rules()] + dashboard_queries()
    assert len(queries) > 30
    unknown = {name: q for q in queries for name in metric_names(q) if name not in exported}
    assert not unknown, f"not exported: {unknown}"


def test_dashboard_panels_have_queries() -> None:
    """Every panel but the rows has at least one query, and each query a legend."""
    dashboard = json.loads((KIT / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(target.get("legendFormat") for target in panel["targets"]), panel["title"]


def _promtool(*args: str, cwd: Path = KIT) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@needs_promtool
def test_promtool_unit_tests_of_the_alert_rules() -> None:
    """`promtool test rules deploy/monitoring/alerts_test.yml` passes: each alert fires when it should, not before."""
    done = _promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    tested = set(re.findall(r"alertname: (\w+)", (KIT / "alerts_test.yml").read_text()))
    assert {rule["alert"] for rule in alert_rules()} <= tested, "every alert has a unit test"


@needs_promtool
def test_prometheus_config_is_valid() -> None:
    """`promtool check config` accepts the compose profile's prometheus.yml and the rule file it loads."""
    done = _promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Each dashboard query, as a recording rule, passes `promtool check rules` (which parses its PromQL)."""
    rules = [{"record": f"imunban:dashboard_query_{i}", "expr": q} for i, q in enumerate(dashboard_queries())]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = _promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


@needs_promtool
def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    """promtool check rules refuses a query that does not parse (guards the test above)."""
    rule = {"record": "imunban:broken", "expr": "sum by (app (rate(imunban_retries_total[5m]))"}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [rule]}]}))
    assert _promtool("check", "rules", "queries.yml", cwd=tmp_path).returncode != 0


def test_metrics_doc_lists_every_series() -> None:
    """docs/metrics.md has a row for every imunban_* series family exported, and none that is not."""
    families = {
        re.sub(r"_(total|bucket|count|sum)$", "", name) for name in exported_names() if name.startswith("imunban_")
    }
    documented = set(re.findall(r"^\| `(imunban_\w+)`", (ROOT / "docs" / "metrics.md").read_text(), re.MULTILINE))
    documented = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in documented}
    assert families - documented == set(), "document these series in docs/metrics.md"
    assert documented - families == set(), "docs/metrics.md lists series that are not exported"
