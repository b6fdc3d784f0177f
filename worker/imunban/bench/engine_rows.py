"""Verdict rows of the latency, scattered-expiries, idle-CPU and CPU-hog scenarios (docs/semantics.md#targets)."""

from __future__ import annotations

import operator
from functools import partial
from typing import Any

from imunban.bench.verdict import INFO, MISS, Row, check, cpu_text, num

#: Targets (docs/semantics.md#targets, issue 20): send -> delivered p99 by load, for every source.
LATENCY_P99_MS_BY_LOAD = {0.10: 50.0, 0.50: 100.0}
#: Target (docs/semantics.md#targets): scattered expiries, p99 lateness at most this multiple of the oldest-first bound.
SCATTERED_RATIO = 1.25
#: Target (docs/semantics.md#targets): an idle worker (its whole process tree) uses at most this % of one core.
IDLE_PCT = 0.5
#: Target (docs/semantics.md#targets): the drain beside a CPU hog, as a fraction of 20 x the configured limit.
HOG_RATIO = 0.95


def _ms3(part: dict[str, Any], prefix: str = "") -> str:
    """p50 / p99 / p99.9 of one latency summary, as text in ms."""
    values = [part.get(f"{prefix}{k}") for k in ("p50_ms", "p99_ms", "p999_ms")]
    return " / ".join(num(v) for v in values) + " ms"


def _delivered_note(part: dict[str, Any]) -> str:
    requests, delivered = part.get("requests"), part.get("delivered")
    if requests is None or delivered is None or delivered >= requests:
        return ""
    return f" ({delivered:,} of {requests:,} delivered)"


def latency_rows(lat: dict[str, Any]) -> list[Row]:
    """One row per (load, source): p50 / p99 / p99.9; the 10 % load rows carry the p99 target."""
    rows: list[Row] = []
    for part in lat.get("windows", []):
        load, source = float(part.get("load", 0.0)), str(part.get("source", "?"))
        metric = f"{100 * load:.0f} % load ({num(part.get('members_per_s'))}/s), {source}: p50 / p99 / p99.9"
        metric += f" (from {part.get('measured_from', 'the due time')})"
        value = _ms3(part) + _delivered_note(part)
        bound = next((ms for at, ms in LATENCY_P99_MS_BY_LOAD.items() if abs(load - at) < 1e-9), None)
        if bound is not None:
            complete = part.get("delivered") == part.get("requests")
            verdict = check(part.get("p99_ms"), partial(operator.ge, bound)) if complete else MISS
            rows.append(Row("latency", metric, value, f"p99 ≤ {bound:g} ms, all delivered", verdict))
        else:
            rows.append(Row("latency", metric, value, "", INFO))
        if part.get("due_p99_ms") is not None and part.get("measured_from") == "send":
            rows.append(Row("latency", f"{100 * load:.0f} % load, {source}: from the assigned due time (reference)",
                            _ms3(part, "due_"), "", INFO))  # fmt: skip
    burst = lat.get("burst")
    if burst:
        bound = burst.get("bound_s")
        complete = burst.get("early") == 0 and burst.get("delivered") == burst.get("members")
        measured = f"{num(burst.get('last_s'), '.3f')} s / {num(burst.get('early'))}"
        metric = f"burst of {num(burst.get('members'))} due in the same instant: last delivered after it / early"
        target = f"≤ {num(bound, '.3f')} s (1.1 x N / (20 x limit) + a round trip) / 0"
        ok = check(burst.get("last_s"), lambda v: bound is not None and v <= bound) if complete else MISS
        rows.append(Row("latency", metric, measured, target, ok))
    return rows


def scattered_rows(s: dict[str, Any]) -> list[Row]:
    """Lateness against the oldest-first bound W, and no delivery before its due time."""
    shape = f"{num(s.get('groups'))} groups, {num(s.get('members_per_s'))} members/s"
    requests, delivered = s.get("requests"), s.get("delivered")
    return [
        Row("scattered", f"lateness p50 / p99 / p99.9 ({shape})", _ms3(s), "", INFO),
        Row("scattered", f"oldest-first bound W at {num(s.get('rate_limit'), 'g')} calls/s",
            f"{num(s.get('bound_s'), '.3f')} s", "", INFO),
        Row("scattered", "p99 lateness / W", num(s.get("ratio"), ".2f"), f"≤ {SCATTERED_RATIO:g}",
            check(s.get("ratio"), lambda r: r <= SCATTERED_RATIO)),
        Row("scattered", "delivered before due (API answer after < API latency)", num(s.get("early")), "0",
            check(s.get("early"), lambda n: n == 0)),
        Row("scattered", "delivered", f"{num(delivered)} of {num(requests)}", "all",
            check(delivered, lambda n: n == requests)),
        Row("scattered", "calls/s, members per call over the due window",
            f"{num(s.get('calls_per_s'), '.1f')}, {num(s.get('members_per_call'), '.2f')}", "", INFO),
    ]  # fmt: skip


def idle_rows(i: dict[str, Any]) -> list[Row]:
    """The busiest idle worker's CPU as % of one core (its whole process tree)."""
    per_worker = ", ".join(num(p, ".2f") for p in i.get("pct_of_core", []))
    return [
        Row("idle", f"idle worker CPU, % of one core over {num(i.get('seconds'))} s (busiest worker)",
            f"{num(i.get('max_pct'), '.2f')} %", f"≤ {IDLE_PCT:g} %", check(i.get("max_pct"), lambda p: p <= IDLE_PCT)),
        Row("idle", "idle CPU per worker, % of one core", per_worker or "—", "", INFO),
    ]  # fmt: skip


def hog_rows(h: dict[str, Any], limit: float) -> list[Row]:
    """The drain while a busy-loop process keeps one core busy."""
    ratio = h.get("ratio_to_20x_limit")
    return [
        Row("hog", "drain beside a CPU hog: members/s", num(h.get("members_per_s")),
            f"≥ {HOG_RATIO * 20 * limit:,.0f}", check(ratio, lambda r: r >= HOG_RATIO)),
        Row("hog", "drain beside a CPU hog: ratio to 20 x configured limit", num(ratio, ".3f"), f"≥ {HOG_RATIO:g}",
            check(ratio, lambda r: r >= HOG_RATIO)),
        Row("hog", "members per call / rate-limit rejections",
            f"{num(h.get('members_per_call'), '.2f')} / {num(h.get('rate_limited'))}", "", INFO),
        Row("hog", "worker CPU per API call / per member (process tree)",
            cpu_text(h.get("worker_cpu_s_per_call"), h.get("members_per_call")), "", INFO),
        Row("hog", "cores the hog got (it asks for one; the OS shares)", num(h.get("hog_cores"), ".2f"), "", INFO),
    ]  # fmt: skip


#: Target (docs/semantics.md#targets, issue 20): B's send -> delivered p99 while A drains, each source, in ms.
APPS_TRICKLE_P99_MS = 250.0
#: Each app's drain as a fraction of 20 x its own limit (A beside B's trickle; B while A is held).
APPS_RATIO = 0.95


def apps_rows(a: dict[str, Any]) -> list[Row]:
    """Two apps: A's backlog beside B's Celery trickle, then A held while B drains its own backlog."""
    p1, p2 = a.get("phase1") or {}, a.get("phase2") or {}
    target = a.get("target_per_s") or 0.0
    cores = p1.get("cores_used") or {}
    sent, delivered = p1.get("b_sent"), p1.get("b_delivered")
    return [
        Row("apps", f"A drains {num(p1.get('a_backlog'))}: members/s (B's trickle beside it)",
            f"{num(p1.get('a_members_per_s'))} ({num(p1.get('a_ratio_to_20x_limit'), '.3f')})",
            f"≥ {APPS_RATIO * target:,.0f} ({APPS_RATIO:g} x 20 x limit)",
            check(p1.get("a_ratio_to_20x_limit"), lambda r: r >= APPS_RATIO)),
        Row("apps", "A: members per call / rate-limit rejections / most calls in 1 s",
            f"{num(p1.get('a_members_per_call'), '.2f')} / {num(p1.get('a_rate_limited'))} / "
            f"{num(p1.get('a_max_calls_in_1s'))}", "0 rejections", check(p1.get("a_rate_limited"), lambda n: n == 0)),
        Row("apps", "B via Celery (10/s) while A drains: send → delivered p50 / p99 / max",
            f"{num(p1.get('b_p50_ms'))} / {num(p1.get('b_p99_ms'))} / {num(p1.get('b_max_ms'))} ms",
            f"p99 ≤ {APPS_TRICKLE_P99_MS:g} ms", check(p1.get("b_p99_ms"), lambda p: p <= APPS_TRICKLE_P99_MS)),
        *(Row("apps", f"B via {label} while A drains: send → delivered p50 / p99 ({num(p1.get(f'b_{key}_delivered'))})",
              f"{num(p1.get(f'b_{key}_p50_ms'))} / {num(p1.get(f'b_{key}_p99_ms'))} ms",
              f"p99 ≤ {APPS_TRICKLE_P99_MS:g} ms",
              check(p1.get(f"b_{key}_p99_ms"), lambda p: p <= APPS_TRICKLE_P99_MS))
          for label, key in (("Python (5/s)", "python"), ("the CLI (every 2 s, a new process each)", "cli"))),
        Row("apps", "B's trickle delivered", f"{num(delivered)} of {num(sent)}", "all",
            check(delivered, lambda n: sent is not None and n >= sent)),
        Row("apps", "cores used while both run: workers / simulator+bench / Redis",
            f"{num(cores.get('workers'), '.2f')} / {num(cores.get('simulator_and_bench'), '.2f')} / "
            f"{num(cores.get('redis'), '.2f')}", "", INFO),
        Row("apps", "worker CPU per API call (both apps, process tree)",
            cpu_text(p1.get("worker_cpu_s_per_call"), None), "", INFO),
        Row("apps", "A held on a configuration error (60006)",
            "held" if p2.get("a_held") and p2.get("a_still_held_after_b") else "not held", "held while B drains",
            check(p2.get("a_held"), lambda h: bool(h and p2.get("a_still_held_after_b")))),
        Row("apps", f"A held: B drains {num(p2.get('b_backlog'))}: members/s",
            f"{num(p2.get('b_members_per_s'))} ({num(p2.get('b_ratio_to_20x_limit'), '.3f')})",
            f"≥ {APPS_RATIO * target:,.0f} ({APPS_RATIO:g} x 20 x limit)",
            check(p2.get("b_ratio_to_20x_limit"), lambda r: r >= APPS_RATIO)),
        Row("apps", "A: dead-lettered while held / resumed by itself after the fix",
            f"{num(p2.get('a_dead'))} / {'yes' if p2.get('a_resumed') else 'no'} "
            f"({num(p2.get('a_resume_s'), '.1f')} s)", "0 / yes",
            check(p2.get("a_dead"), lambda n: n == 0 and bool(p2.get("a_resumed")))),
    ]  # fmt: skip
