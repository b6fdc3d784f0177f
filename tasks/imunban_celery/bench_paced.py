"""A paced Celery producer for ``imunban bench``'s latency scenario: ``imunban.unban`` at given times.

``python -m imunban_celery.bench_paced SCHEDULE SENT`` reads JSON Lines
``{"t": seconds, "group_id": str, "members": [str, ...]}`` (``t`` ascending, from the start; an
optional ``"app"`` is passed on as the task's ``app``),
publishes each with ``send_task("imunban.unban", kwargs=...)`` on the public queue at its time, as
a system that is not Python would, writes the Unix ms of each send to SENT (one number per line, in
schedule order) and prints one JSON line ``{"sent", "seconds", "max_behind_ms"}``. The benchmark
runs it in a subprocess so that the ``imunban`` package never imports Celery.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imunban.settings import Settings
from imunban_celery.app import create_celery
from imunban_celery.context import context_of, route_intake
from imunban_celery.names import UNBAN_TASK


def run(schedule: list[dict[str, Any]], sent_path: Path, settings: Settings | None = None) -> dict[str, Any]:
    """Send every scheduled message at its offset; return the count, the span and how far sends fell behind."""
    celery = create_celery(settings or Settings.from_env())
    apps = context_of(celery).apps
    with celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
        with celery.producer_pool.acquire(block=True) as producer:
            sent_ms: list[int] = []
            behind = 0.0
            started = time.perf_counter()
            for item in schedule:
                wait = started + float(item["t"]) - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    behind = max(behind, -wait)
                sent_ms.append(int(time.time() * 1000))
                kwargs: dict[str, Any] = {"group_id": item["group_id"], "members": list(item["members"])}
                if "app" in item:
                    kwargs["app"] = item["app"]
                celery.send_task(
                    UNBAN_TASK,
                    kwargs=kwargs,
                    # Its app's intake queue with several apps (the public one otherwise): as a producer
                    # that knows the deployment's apps sends (docs/celery-contract.md).
                    queue=route_intake(apps, kwargs),
                    producer=producer,
                )
            seconds = time.perf_counter() - started
    sent_path.write_text("".join(f"{ms}\n" for ms in sent_ms))
    return {"sent": len(sent_ms), "seconds": seconds, "max_behind_ms": round(1000 * behind, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imunban_celery.bench_paced", description=__doc__.splitlines()[0])
    parser.add_argument("schedule", type=Path, help="JSON Lines: t (s), group_id, members")
    parser.add_argument("sent", type=Path, help="where to write the Unix ms of each send, one per line")
    args = parser.parse_args(argv)
    schedule = [json.loads(line) for line in args.schedule.read_text().splitlines() if line.strip()]
    print(json.dumps(run(schedule, args.sent)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
