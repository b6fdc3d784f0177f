"""Turn the benchmark's results into a verdict table (terminal, Markdown, JSON) and the drain plot."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from imunban.bench.engine_rows import apps_rows, hog_rows, idle_rows, latency_rows, scattered_rows
from imunban.bench.fourapps import fourapps_rows
from imunban.bench.quota import quota_rows
from imunban.bench.verdict import INFO as INFO
from imunban.bench.verdict import MISS as MISS
from imunban.bench.verdict import OK as OK
from imunban.bench.verdict import Row as Row
from imunban.bench.verdict import check as _check
from imunban.bench.verdict import cpu_text as _cpu
from imunban.bench.verdict import num as _num

#: "Unchanged from an empty store" read as: at least this fraction of the empty-store rate.
UNCHANGED = 0.85
#: Target (docs/semantics.md#targets): worker CPU (the whole worker process tree) per API call during a drain.
CPU_PER_CALL_S = 0.0010


def _drain_rows(d: dict[str, Any], limit: float) -> list[Row]:
    target = 0.95 * 20 * limit
    ratio = d.get("ratio_to_20x_limit")
    return [
        Row("drain", "members/s, first to last call", _num(d.get("members_per_s")),
            f"≥ {target:,.0f} (0.95 x 20 x {limit:g}/s)", _check(ratio, lambda r: r >= 0.95)),
        Row("drain", "ratio to 20 x configured limit", _num(ratio, ".3f"), "≥ 0.95",
            _check(ratio, lambda r: r >= 0.95)),
        Row("drain", "members per call", _num(d.get("members_per_call"), ".2f"), "≥ 19.5",
            _check(d.get("members_per_call"), lambda m: m >= 19.5)),
        Row("drain", "rate-limit rejections (60007)", _num(d.get("rate_limited")), "0",
            _check(d.get("rate_limited"), lambda n: n == 0)),
        Row("drain", "most calls in any sliding 1 s", _num(d.get("max_calls_in_1s")), "≤ 200 (the API's)",
            _check(d.get("max_calls_in_1s"), lambda n: n <= 200)),
        Row("drain", "worker CPU per API call / per member (process tree)", _cpu(d.get("worker_cpu_s_per_call"),
            d.get("members_per_call")), f"≤ {1000 * CPU_PER_CALL_S:g} ms per call",
            _check(d.get("worker_cpu_s_per_call"), lambda c: c <= CPU_PER_CALL_S)),
        *_floor_rows(d),
    ]  # fmt: skip


def _floor_rows(d: dict[str, Any]) -> list[Row]:
    """The bare client loop of the same run (bench/floor.py) and the worker's CPU per call over it."""
    floor = d.get("floor")
    if not isinstance(floor, dict):
        return []
    if "error" in floor:
        return [Row("drain", "floor: bare client loop", str(floor["error"])[:100], "", MISS)]
    what = (f"floor: bare http.client POST + {floor.get('round_trips_per_call')} EVALSHA per call, "
            f"{floor.get('threads')} threads at {_num(floor.get('rate_per_s'))}/s")  # fmt: skip
    return [
        Row("drain", what, _cpu(floor.get("cpu_s_per_call"), 20.0), "", INFO),
        Row("drain", "worker CPU per call / floor's, same run", _num(d.get("worker_to_floor"), ".2f", "x"), "", INFO),
    ]


def _naive_rows(n: dict[str, Any], d: dict[str, Any] | None) -> list[Row]:
    ours = d.get("members_per_s") if d else None
    theirs = n.get("members_per_s")
    ratio = ours / theirs if ours is not None and theirs else None
    return [
        Row("naive", f"naive members/s ({n.get('window_s', 0):.0f} s window)", _num(theirs), "", INFO),
        Row("naive", "imunban / naive, same run", _num(ratio, ".1f", "x"), "≥ 18x", _check(ratio, lambda r: r >= 18)),
        Row("naive", "naive worker CPU per API call / per member", _cpu(n.get("worker_cpu_s_per_call"), 1.0), "", INFO),
    ]


def _bulk_rows(b: dict[str, Any]) -> list[Row]:
    return [
        Row("bulk", "Producer.bulk members/s", _num(b.get("bulk_members_per_s")), "≥ 50,000",
            _check(b.get("bulk_members_per_s"), lambda r: r >= 50_000)),
        Row("bulk", "apply_async per member, /s", _num(b.get("apply_async_per_s")), "", INFO),
        Row("bulk", "bulk / apply_async, same run", _num(b.get("ratio"), ".1f", "x"), "≥ 20x",
            _check(b.get("ratio"), lambda r: r >= 20)),
    ]  # fmt: skip


def _scale_rows(s: dict[str, Any]) -> list[Row]:
    empty, full = s.get("empty") or {}, s.get("full") or {}
    er, pr = s.get("enqueue_ratio_full_to_empty"), s.get("promote_ratio_full_to_empty")
    traced = s.get("traced") or {}
    return [
        Row("scale", f"Redis bytes per scheduled request ({_num(s.get('scheduled'))})",
            _num(s.get("bytes_per_request"), ".1f"), "≤ 150", _check(s.get("bytes_per_request"), lambda b: b <= 150)),
        Row("scale", "enqueue/s: empty → full (median paired ratio)",
            f"{_num(empty.get('enqueue_per_s'))} → {_num(full.get('enqueue_per_s'))} ({_num(er, '.2f')})",
            f"unchanged (≥ {UNCHANGED:.2f})", _check(er, lambda r: r >= UNCHANGED)),
        Row("scale", "promotion/s: empty → full (median paired ratio)",
            f"{_num(empty.get('promote_per_s'))} → {_num(full.get('promote_per_s'))} ({_num(pr, '.2f')})",
            f"unchanged (≥ {UNCHANGED:.2f})", _check(pr, lambda r: r >= UNCHANGED)),
        Row("scale", f"Redis bytes per traced request, record and member index ({_num(traced.get('traced'))})",
            _num(traced.get("bytes_per_traced_request"), ".1f"), "", INFO),
    ]  # fmt: skip


def _chaos_rows(c: dict[str, Any]) -> list[Row]:
    drain = f"{_num(c.get('time_to_drain_s'), '.1f')} s (fault-free {_num(c.get('fault_free_drain_s'), '.1f')} s)"
    return [
        Row("chaos", f"requests lost (of {_num(c.get('requests'))})", _num(c.get("lost")), "0",
            _check(c.get("lost"), lambda n: n == 0)),
        Row("chaos", "dead-lettered", _num(c.get("dead")), "0", _check(c.get("dead"), lambda n: n == 0)),
        Row("chaos", "duplicate unbans (counted, harmless)", _num(c.get("duplicates")), "", INFO),
        Row("chaos", "time to drain", drain, "", INFO if c.get("drained") else MISS),
    ]  # fmt: skip


def _full_rows(f: dict[str, Any]) -> list[Row]:
    stored, celery = _num(f.get("stored")), _num(f.get("celery_accepted"))
    peaks = " / ".join(f"{p:.0%}" for p in f.get("fill_peaks") or [])
    late = f"{_num(f.get('late_worker_first_delivery_s'), '.1f')} s, {_num(f.get('late_worker_delivered'))} delivered"
    return [
        Row("full", "accepted (stored / Celery)", f"{_num(f.get('accepted'))} ({stored} / {celery})", "", INFO),
        Row("full", "Redis used / maxmemory after each fill; peak while draining", f"{peaks}; "
            f"{_num(f.get('peak_use_while_full'), '.0%')}", "", INFO),
        Row("full", "delivered while intake was refused", f"{_num(f.get('delivered_while_full'))} in "
            f"{_num(f.get('seconds_full'), '.1f')} s", "> 0", _check(f.get("delivered_while_full"), lambda n: n > 0)),
        Row("full", "worker started on the full Redis: first delivery", late, "delivers",
            _check(f.get("late_worker_delivered"), lambda n: n > 0)),
        Row("full", "accepted, neither delivered nor queued (while full)", _num(f.get("unaccounted")), "0",
            _check(f.get("unaccounted"), lambda n: n == 0)),
        Row("full", "delivered (after maxmemory was raised)", _num(f.get("delivered")), "all accepted",
            _check(f.get("drained"), bool)),
        Row("full", "lost", _num(f.get("lost")), "0", _check(f.get("lost"), lambda n: n == 0)),
        Row("full", "workers that died", _num(f.get("workers_died")), "0",
            _check(f.get("workers_died"), lambda n: n == 0)),
    ]  # fmt: skip


def _failover_rows(f: dict[str, Any]) -> list[Row]:
    after = f"{_num(f.get('kill_to_delivery_s'), '.1f')} s (promotion {_num(f.get('kill_to_promotion_s'), '.1f')} s)"
    return [
        Row("failover", "acknowledged requests (IMUNBAN_DURABLE_REPLICAS=1)", _num(f.get("acknowledged")), "", INFO),
        Row("failover", "acknowledged but lost", _num(f.get("lost")), "0", _check(f.get("lost"), lambda n: n == 0)),
        Row("failover", "drained after the last failover", str(f.get("drained", "—")), "True",
            _check(f.get("drained"), bool)),
        Row("failover", "refused intakes (re-sent by the producer)", _num(f.get("refused")), "", INFO),
        Row("failover", "failovers (primary SIGKILLed, old one back as a replica)", _num(len(f.get("failovers", []))),
            "3", _check(len(f.get("failovers", [])), lambda n: n >= 3)),
        Row("failover", "kill → every worker delivering again (worst failover)", after, "≤ 2 s after promotion",
            _check(f.get("promotion_to_delivery_s"), lambda s: s <= 2)),
        Row("failover", "states seen: stalled / workers that died",
            f"{_num(f.get('stalled'))} / {_num(f.get('workers_died'))}", "0 / 0",
            _check((f.get("stalled"), f.get("workers_died")), lambda p: p == (0, 0))),
        Row("failover", "duplicate unbans (counted, harmless)", _num(f.get("duplicates")), "", INFO),
        Row("failover", "errors mentioning NOSCRIPT (SCRIPT FLUSH, new primary)", _num(f.get("noscript_errors")), "0",
            _check(f.get("noscript_errors"), lambda n: n == 0)),
        Row("failover", "bulk members/s, no WAIT (2 replicas)", _num(f.get("bulk_members_per_s")), "", INFO),
        Row("failover", "bulk members/s, IMUNBAN_DURABLE_REPLICAS=1", _num(f.get("bulk_durable_members_per_s")),
            "≥ 50,000", _check(f.get("bulk_durable_members_per_s"), lambda r: r >= 50_000)),
        Row("failover", "bulk members/s, one node: AOF everysec / always",
            f"{_num(f.get('bulk_single_everysec_per_s'))} / {_num(f.get('bulk_single_always_per_s'))}", "", INFO),
    ]  # fmt: skip


def _cluster_rows(c: dict[str, Any]) -> list[Row]:
    k, m = c.get("kill", {}), c.get("reshard", {})
    cpu = c.get("producer_cpu_us_per_member", {})
    return [
        Row("cluster", "kill: acknowledged / lost (IMUNBAN_DURABLE_REPLICAS=1)",
            f"{_num(k.get('acknowledged'))} / {_num(k.get('lost'))}", "0 lost",
            _check(k.get("lost"), lambda n: n == 0)),
        Row("cluster", "kill → replica promoted", f"{_num(k.get('kill_to_promotion_s'), '.2f')} s", "", INFO),
        Row("cluster", "kill → killed app delivering again", f"{_num(k.get('resumed_s'), '.2f')} s", "≤ 5 s",
            _check(k.get("resumed_s"), lambda s: s <= 5)),
        Row("cluster", "kill: other app's longest pause", f"{_num(k.get('other_max_gap_s'), '.2f')} s", "< 1 s",
            _check(k.get("other_max_gap_s"), lambda s: s < 1)),
        Row("cluster", "kill: refused intakes (re-sent) / duplicates",
            f"{_num(k.get('refused'))} / {_num(k.get('duplicates'))}", "", INFO),
        Row("cluster", "reshard: acknowledged / lost", f"{_num(m.get('acknowledged'))} / {_num(m.get('lost'))}",
            "0 lost", _check(m.get("lost"), lambda n: n == 0)),
        Row("cluster", "reshard: keys moved, slot in flight",
            f"{_num(m.get('moved_keys'))} in {_num(m.get('migrating_s'), '.2f')} s", "", INFO),
        Row("cluster", "reshard: moved app's longest pause", f"{_num(m.get('affected_max_gap_s'), '.2f')} s",
            "reported", INFO),
        Row("cluster", "reshard: other app's longest pause", f"{_num(m.get('other_max_gap_s'), '.2f')} s", "< 1 s",
            _check(m.get("other_max_gap_s"), lambda s: s < 1)),
        Row("cluster", "bulk members/s: one Redis / 3-master cluster", f"{_num(c.get('bulk_single_per_s'))} / "
            f"{_num(c.get('bulk_cluster_per_s'))}", "cluster ≥ 50,000",
            _check(c.get("bulk_cluster_per_s"), lambda r: r >= 50_000)),
        Row("cluster", "bulk members/s, cluster with replicas: no WAIT / IMUNBAN_DURABLE_REPLICAS=1",
            f"{_num(c.get('bulk_cluster_replicas_per_s'))} / {_num(c.get('bulk_cluster_durable_per_s'))}", "", INFO),
        Row("cluster", "producer CPU µs/member: one Redis / cluster / + replicas / + WAIT",
            " / ".join(_num(cpu.get(n), ".1f") for n in ("single", "cluster", "cluster_replicas", "cluster_durable")),
            "", INFO),
    ]  # fmt: skip


def _web_rows(w: dict[str, Any]) -> list[Row]:
    """One row per console page or API call: p95 server time (p50 beside it), ≤ 100 ms; a member lookup ≤ 10 ms."""
    size = f"{w.get('scheduled', 0):,} scheduled, {w.get('dead', 0):,} dead"
    rows = [Row("web", "store", size, "1,000,000 scheduled, 100,000 dead", INFO)]
    for name, e in w.get("endpoints", {}).items():
        limit = 10.0 if "member lookup" in name else 100.0
        value = f"{e['p95_ms']:.1f} ms (p50 {e['p50_ms']:.1f})"
        verdict = OK if e["p95_ms"] <= limit else MISS
        rows.append(Row("web", f"{name}, p95", value, f"≤ {limit:g} ms", verdict))
    return rows


def build_rows(results: dict[str, Any]) -> list[Row]:
    """One row per reported number, with its target and verdict; scenarios that failed say so."""
    limit = float(results.get("config", {}).get("rate_limit", 190.0))
    scenarios: dict[str, Any] = results.get("scenarios", {})
    rows: list[Row] = []
    drain = scenarios.get("drain")
    builders: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
        "drain": lambda d: _drain_rows(d, limit),
        "naive": lambda n: _naive_rows(n, drain if drain and "error" not in drain else None),
        "latency": latency_rows,
        "scattered": scattered_rows,
        "idle": idle_rows,
        "hog": lambda h: hog_rows(h, limit),
        "bulk": _bulk_rows,
        "scale": _scale_rows,
        "chaos": _chaos_rows,
        "full": _full_rows,
        "failover": _failover_rows,
        "web": _web_rows,
        "apps": apps_rows,
        "cluster": _cluster_rows,
        "fourapps": fourapps_rows,
        "quota": quota_rows,
    }
    for name, build in builders.items():
        data = scenarios.get(name)
        if data is None:
            continue
        if "error" in data:
            rows.append(Row(name, "scenario failed", str(data["error"])[:100], "", MISS))
            continue
        rows.extend(build(data))
    return rows


def print_table(rows: list[Row], console: Console) -> None:
    table = Table(title="imunban bench", show_lines=False)
    for column in ("scenario", "metric", "measured", "target", ""):
        table.add_column(column, justify="right" if column == "measured" else "left")
    for row in rows:
        style = "red" if row.verdict == MISS else ("green" if row.verdict == OK else "")
        table.add_row(row.scenario, row.metric, row.value, row.target, row.verdict, style=style)
    console.print(table)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| scenario | metric | measured | target | |", "|---|---|---:|---|---|"]
    lines += [f"| {r.scenario} | {r.metric} | {r.value} | {r.target} | {r.verdict} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_outputs(results: dict[str, Any], rows: list[Row], out_dir: Path) -> list[Path]:
    """results.json (everything, timelines included) and results.md (the table); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    as_json = out_dir / "results.json"
    as_json.write_text(json.dumps({**results, "rows": [asdict(r) for r in rows]}, indent=2, default=str) + "\n")
    as_md = out_dir / "results.md"
    command = results.get("command", "")
    as_md.write_text(f"Command: `{command}`\n\n" + markdown_table(rows))
    return [as_json, as_md]


def plot_drain(drain: dict[str, Any], limit: float, path: Path) -> str | None:
    """delivered/s and calls/s per second of the drain run as a PNG; returns why not, if it could not."""
    timeline = drain.get("timeline") or []
    if not timeline:
        return "no drain timeline"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'imunban[bench]')"
    seconds = [row["t"] for row in timeline]
    fig, (members_ax, calls_ax) = plt.subplots(2, 1, sharex=True, figsize=(9, 6), dpi=110)
    members_ax.step(seconds, [row["members"] for row in timeline], where="post", color="tab:blue",
                    label="members delivered / s")  # fmt: skip
    members_ax.axhline(20 * limit, color="tab:green", linestyle="--", linewidth=1, label=f"20 x {limit:g} (ceiling)")
    members_ax.axhline(0.95 * 20 * limit, color="tab:gray", linestyle=":", linewidth=1, label="target 0.95 x ceiling")
    members_ax.set_ylabel("members / s")
    members_ax.set_ylim(0, 20 * 215)
    calls_ax.step(seconds, [row["calls"] for row in timeline], where="post", color="tab:orange", label="API calls / s")
    calls_ax.step(seconds, [row["rate_limited"] for row in timeline], where="post", color="tab:red",
                  label="60007 rejections / s")  # fmt: skip
    calls_ax.axhline(limit, color="tab:green", linestyle="--", linewidth=1, label=f"configured limit {limit:g}/s")
    calls_ax.axhline(200, color="tab:red", linestyle=":", linewidth=1, label="API limit 200/s")
    calls_ax.set_ylabel("calls / s")
    calls_ax.set_ylim(0, 215)
    calls_ax.set_xlabel("seconds since the first call (per wall-clock second; the first and last are partial)")
    rate = drain.get("members_per_s") or 0.0
    members_ax.set_title(
        f"Backlog drain: {drain.get('requests', 0):,} requests, {rate:,.0f} members/s first to last call, "
        f"{drain.get('members_per_call') or 0:.2f} members/call"
    )
    for ax in (members_ax, calls_ax):
        ax.legend(loc="lower center", fontsize=8, ncol=3)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None
