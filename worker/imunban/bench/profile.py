"""``imunban bench --profile``: a py-spy profile of one worker (its process tree) during a drain.

py-spy (``pip install py-spy``) samples worker 0 for ``seconds`` while a backlog big enough to
keep the limiter busy throughout drains. Only threads holding the GIL are sampled (``--gil``), so
a thread waiting on a socket or a lock is not counted: the samples approximate the Python CPU time.
The raw (collapsed-stack) file is kept and its top entries, by own samples and by samples including
callees, are printed and written as Markdown.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imunban.bench.config import BenchConfig
from imunban.bench.scenarios import cluster_for, ready
from imunban.bench.util import Log, drained, tree_cpu, wait_for, warm_up, worker_pids

#: Samples per second (py-spy's default).
RATE = 100


@dataclass(frozen=True)
class Top:
    samples: int
    own: list[tuple[str, int]]  # frame -> samples where it was running (the leaf)
    total: list[tuple[str, int]]  # frame -> samples where it was on the stack


def frame_name(frame: str) -> str:
    """``func (path/to/mod.py:12)`` -> ``func (to/mod.py)``: one entry per function, not per line."""
    name, _, where = frame.partition(" (")
    if not where:
        return frame.strip()
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(Path(path).parts[-2:])
    return f"{name} ({short})"


def top_frames(lines: Iterable[str], n: int = 20) -> Top:
    """The ``n`` busiest functions of py-spy ``--format raw`` output ("frame;frame;... count" per line)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    return Top(samples, own.most_common(n), total.most_common(n))


def top_markdown(top: Top, title: str) -> str:
    """The two top lists as Markdown tables with % of samples."""

    def table(heading: str, entries: list[tuple[str, int]]) -> list[str]:
        rows = [f"| {heading} | samples | % |", "|---|---:|---:|"]
        rows += [f"| `{name}` | {count:,} | {100 * count / max(1, top.samples):.1f} |" for name, count in entries]
        return rows

    lines = [f"{title} — {top.samples:,} samples", ""]
    lines += [*table("own time (leaf frame)", top.own), "", *table("total (on the stack)", top.total)]
    return "\n".join(lines) + "\n"


def py_spy_binary() -> str | None:
    """py-spy next to this Python (a venv), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_drain(cfg: BenchConfig, root: Path, out_dir: Path, log: Log, seconds: float = 10.0) -> dict[str, Any]:
    """Drain a backlog lasting longer than ``seconds`` while py-spy records worker 0; write and return its top."""
    binary = py_spy_binary()
    if binary is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "profile-worker0.txt"
    members = math.ceil(cfg.drain_target_per_s * (seconds + 3.0))
    groups = math.ceil(members / cfg.drain_members)
    with cluster_for(cfg, root / "profile") as cluster:
        ready(cluster, log)
        warm_up(cluster)
        pid = worker_pids(cluster)[0]
        cmd = [binary, "record", "--pid", str(pid), "--duration", f"{seconds:g}", "--rate", str(RATE),
               "--format", "raw", "--output", str(raw), "--subprocesses", "--gil", "--nonblocking"]  # fmt: skip
        with open(out_dir / "profile-py-spy.log", "ab") as spy_log:
            spy = subprocess.Popen(cmd, stdout=spy_log, stderr=subprocess.STDOUT)
            time.sleep(0.5)  # attached before the backlog arrives
            cpu_before, sim_before = tree_cpu([pid]), cluster.sim_stats()
            cluster.producer().bulk(
                {"group_id": f"prof-{g:05d}", "members": [f"user_{m:06d}" for m in range(cfg.drain_members)]}
                for g in range(groups)
            )
            code = spy.wait(timeout=seconds + 60)
        cpu_after, sim_after = tree_cpu([pid]), cluster.sim_stats()
        wait_for(lambda: drained(cluster), 120.0, poll_s=0.1)
    if code != 0 or not raw.exists():
        raise RuntimeError(f"py-spy exited with {code}; see {out_dir / 'profile-py-spy.log'}")
    top = top_frames(raw.read_text(encoding="utf-8", errors="replace").splitlines())
    calls = sim_after["calls"] - sim_before["calls"]
    cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
    title = (
        f"py-spy, worker 0 of {cfg.workers} (pid {pid}, {RATE} Hz, {seconds:g} s of a {members:,}-member drain; "
        f"all workers made {calls:,} calls; worker 0 used {cpu or 0:.2f} CPU s, of which {top.samples / RATE:.2f} s "
        "sampled holding the GIL: the rest is system time and C code without the GIL)"
    )
    (out_dir / "profile-top.md").write_text(top_markdown(top, title))
    return {"raw": str(raw), "markdown": str(out_dir / "profile-top.md"), "title": title, "top": top, "pid": pid,
            "nproc": os.cpu_count()}  # fmt: skip


def run_profile(cfg: BenchConfig, out_dir: Path, seconds: float) -> int:
    """``imunban bench --profile``: profile worker 0 during a drain, print the top entries; 0 on success."""
    from rich.console import Console

    console = Console()
    work_dir = Path(tempfile.mkdtemp(prefix="imunban-profile-"))
    try:
        found = profile_drain(cfg, work_dir, out_dir, lambda m: console.print(m, highlight=False), seconds)
    except RuntimeError as exc:
        console.print(f"[red]profile failed:[/red] {exc}")
        return 1
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    console.print(Path(found["markdown"]).read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"raw stacks: {found['raw']} (flamegraph.pl or speedscope read them)", highlight=False)
    return 0
