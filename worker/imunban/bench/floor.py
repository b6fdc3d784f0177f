"""The floor of CPU per call: a bare client loop, no Celery and no engine, against the drain's simulator.

Each call is one ``http.client`` POST of a 20-member body on a kept connection (signed as the worker
signs it) and ``round_trips`` Redis ``EVALSHA`` round trips through redis-py (hiredis when installed),
each carrying a batch-sized ARGV and answering a batch-sized reply, as the worker's claim, reservation
and ack do. Calls are paced to the drain's call rate from a few threads. The loop runs in a child
process (``python -m imunban.bench.floor``) so ``getrusage(RUSAGE_SELF)`` is its CPU alone: the bench
then reports the worker's CPU per call beside it as a ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import redis

from imunban.api import UNBAN_PATH
from imunban.settings import Settings
from imunban.usersig import UserSigCache

#: Threads of the bare loop (a worker spreads its calls over its pool threads too).
THREADS = 4
#: Calls of the bare loop (at the drain's rate: ~8 s at 190/s).
MAX_CALLS = 1_500
#: A batch-sized script: KEYS and ARGV in, ARGV back (the claim answers a batch, the ack takes one).
SCRIPT = "redis.call('EXISTS', KEYS[1]) return ARGV"
MEMBERS = [f"floor_{i:06d}" for i in range(20)]


def cpu_s() -> float:
    """This process's user + system CPU seconds (getrusage)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def round_trips_per_call(script_calls: int, api_calls: int) -> int:
    """The worker's Redis script calls per API call, rounded (at least 1): what the bare loop makes per call."""
    return max(1, round(script_calls / api_calls)) if api_calls > 0 else 1


def floor_calls(drain_calls: int) -> int:
    """How many calls the bare loop makes: as many as the drain, at most MAX_CALLS, at least 100."""
    return max(100, min(MAX_CALLS, drain_calls))


def ratio(worker_s: float | None, floor_s: float | None) -> float | None:
    """The worker's CPU per call over the floor's; None when either is missing."""
    return worker_s / floor_s if worker_s is not None and floor_s else None


def run_loop(base_url: str, redis_url: str, calls: int, rate_per_s: float, round_trips: int) -> dict[str, Any]:
    """The bare loop in this process: ``calls`` calls at ``rate_per_s``; returns its CPU and wall time."""
    app = next(iter(Settings.from_env(os.environ).apps()))
    sdkappid, identifier, secret = app.credentials()
    sigs = UserSigCache(sdkappid, identifier, secret)
    query = urlencode({"sdkappid": sdkappid, "identifier": identifier, "usersig": sigs.get()})
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/") + UNBAN_PATH
    client = redis.Redis.from_url(redis_url)
    script = client.register_script(SCRIPT)
    keys = [f"{{floor}}:k{i}" for i in range(6)]
    lock = threading.Lock()
    issued = [0]
    failures = [0]

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=5)
        body = json.dumps({"GroupId": f"floor-{index}", "Members_Account": MEMBERS}, separators=(",", ":")).encode()
        while True:
            with lock:
                n = issued[0]
                if n >= calls:
                    break
                issued[0] += 1
            wait_s = started + n / rate_per_s - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            for _ in range(round_trips):
                script(keys=keys, args=["token", f"floor-{index}", *MEMBERS])
            conn.request("POST", f"{path}?{query}&random={n}&contenttype=json", body=body,
                         headers={"Content-Type": "application/json", "Accept": "application/json"})  # fmt: skip
            response = conn.getresponse()
            data = response.read()
            if response.status != 200 or b'"ErrorCode":0' not in data.replace(b" ", b""):
                failures[0] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    cpu0, started = cpu_s(), time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.monotonic() - started, cpu_s() - cpu0
    return {
        "calls": calls,
        "rate_per_s": rate_per_s,
        "round_trips_per_call": round_trips,
        "threads": THREADS,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_s_per_call": cpu / calls if calls else None,
        "failed_calls": failures[0],
    }


def measure_floor(
    env: Mapping[str, str], base_url: str, redis_url: str, calls: int, rate_per_s: float, round_trips: int
) -> dict[str, Any]:
    """Run the bare loop in a child process with ``env`` (the cluster's IMUNBAN_*); its JSON result."""
    child = {k: v for k, v in os.environ.items() if not k.startswith("IMUNBAN_")}
    child.update(env)
    cmd = [sys.executable, "-m", "imunban.bench.floor", base_url, redis_url, str(calls), f"{rate_per_s:.3f}",
           str(round_trips)]  # fmt: skip
    timeout_s = 60.0 + 3 * calls / max(1.0, rate_per_s)
    out = subprocess.run(cmd, env=child, capture_output=True, text=True, timeout=timeout_s, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imunban.bench.floor", description=__doc__)
    parser.add_argument("base_url")
    parser.add_argument("redis_url")
    parser.add_argument("calls", type=int)
    parser.add_argument("rate_per_s", type=float)
    parser.add_argument("round_trips", type=int)
    a = parser.parse_args(argv)
    print(json.dumps(run_loop(a.base_url, a.redis_url, a.calls, a.rate_per_s, a.round_trips)))


if __name__ == "__main__":
    main()
