"""The failover drill's producers and per-worker API taps.

Three producers enqueue while the primary is killed, each the way a real one does, and each re-sends
what was refused until it is acknowledged (intake is idempotent): Python (``Producer.bulk`` with
``IMUNBAN_DURABLE_REPLICAS``), the CLI (``imunban enqueue`` processes) and Celery (an ``imunban.unban``
message in kombu's envelope, LPUSHed onto the public queue through the Sentinel-following client,
as a producer in any language does; this package does not import the Celery layer). Every
acknowledged request and every refusal is recorded with its time, so the drill can say which
failover a refusal belongs to.

A :class:`Tap` serves the simulator to one worker on its own port and records when that worker's
unban calls arrive: the drill sees each worker deliver again after a promotion, not only "someone".
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

import redis

from imunban.api import UNBAN_PATH
from imunban.errors import StoreError
from imunban.local.full_drill import PUBLIC_QUEUE, envelope
from imunban.producer import Producer
from imunban.sim.core import SimResponse
from imunban.sim.server import Endpoint, SimulatorServer

Pair = tuple[str, str]


class Tap:
    """The simulator as one worker sees it: answers as the simulator does, and records each unban call's time."""

    def __init__(self, simulator: Endpoint) -> None:
        self.simulator = simulator
        self.calls_at: list[float] = []
        self._lock = threading.Lock()
        self.server = SimulatorServer(self)

    def handle(self, method: str, target: str, body: bytes) -> SimResponse:
        response = self.simulator.handle(method, target, body)
        if method == "POST" and target.partition("?")[0] == UNBAN_PATH and response.status == 200:
            with self._lock:
                self.calls_at.append(time.monotonic())
        return response

    def first_call_after(self, moment: float) -> float | None:
        """Monotonic time of this worker's first unban call after ``moment``, None if none yet."""
        with self._lock:
            return next((t for t in self.calls_at if t > moment), None)


class _Intake(threading.Thread):
    """A producer thread: ``send`` one batch every ``every_s``; a refused batch is re-sent until acknowledged."""

    kind = "intake"

    def __init__(self, names: _Names, batch: int, every_s: float) -> None:
        super().__init__(name=f"drill-{self.kind}", daemon=True)
        self.names = names
        self.batch = batch
        self.every_s = every_s
        self.acked: list[Pair] = []
        #: (monotonic time, why) of each refused send.
        self.refusals: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic()
        while not self.stop.is_set():
            pairs = self.take()
            while True:
                why = self.send(pairs)
                if why is None:
                    self.acked += pairs
                    break
                self.refusals.append((time.monotonic(), why))
                if self.stop.wait(0.1):
                    return  # never acknowledged: not counted
            deadline += self.every_s
            self.stop.wait(max(0.0, deadline - time.monotonic()))

    def take(self) -> list[Pair]:
        return self.names.take(self.batch)

    def send(self, pairs: list[Pair]) -> str | None:
        """Send one batch; None when acknowledged, else why it was refused."""
        raise NotImplementedError


class _Names:
    """Fresh (group, member) pairs for every producer, never twice."""

    def __init__(self, first: int, groups: int) -> None:
        self._next = first
        self._groups = groups
        self._lock = threading.Lock()

    def take(self, count: int) -> list[Pair]:
        with self._lock:
            first, self._next = self._next, self._next + count
        return [(f"g{(first + i) % self._groups}", f"m{first + i}") for i in range(count)]


class PythonIntake(_Intake):
    kind = "python"

    def __init__(self, names: _Names, batch: int, every_s: float, producer: Producer) -> None:
        super().__init__(names, batch, every_s)
        self.producer = producer

    def send(self, pairs: list[Pair]) -> str | None:
        try:
            self.producer.bulk({"group_id": g, "member": m} for g, m in pairs)
        except StoreError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None


class CliIntake(_Intake):
    """``imunban enqueue GROUP MEMBER...`` as a process; exit 0 is the acknowledgement."""

    kind = "cli"

    def __init__(self, names: _Names, batch: int, every_s: float, env: Mapping[str, str]) -> None:
        super().__init__(names, batch, every_s)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("IMUNBAN_")}, **env}

    def take(self) -> list[Pair]:
        # One group per call (the CLI's form): fresh members, all in the batch's first group.
        pairs = self.names.take(self.batch)
        return [(pairs[0][0], member) for _, member in pairs]

    def send(self, pairs: list[Pair]) -> str | None:
        argv = [sys.executable, "-m", "imunban", "enqueue", pairs[0][0], *(m for _, m in pairs)]
        try:
            done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60, check=False)
        except subprocess.TimeoutExpired:
            return "imunban enqueue: no answer within 60 s"
        if done.returncode == 0:
            return None
        return f"imunban enqueue exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"


class CeleryIntake(_Intake):
    """``imunban.unban`` messages (one member each) LPUSHed onto the public queue, as any Celery client does."""

    kind = "celery"

    def __init__(self, names: _Names, batch: int, every_s: float, client: redis.Redis) -> None:
        super().__init__(names, batch, every_s)
        self.client = client

    def send(self, pairs: list[Pair]) -> str | None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for group, member in pairs:
                pipe.lpush(PUBLIC_QUEUE, envelope(group, member))
            pipe.execute()
        except redis.exceptions.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None


def new_names(first: int, groups: int) -> _Names:
    return _Names(first, groups)
