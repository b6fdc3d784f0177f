"""Apps isolated in the Celery layer: each app's intake has its own queue, intake never waits for a thread held by
a delivery run (the delivery gate), and producers that send to the public queue keep working."""

from __future__ import annotations

from pathlib import Path

from imunban.apps import AppConfig, Apps
from imunban.settings import Settings
from imunban_celery.app import create_celery
from imunban_celery.broker import DeliveryGate, _Without, skipped_queues
from imunban_celery.context import route_intake, worker_queues
from imunban_celery.names import PUBLIC_QUEUE, intake_queue, is_intake, is_internal

TWO = Apps([AppConfig("A", 1), AppConfig("B", 2)])
ONE = Apps([AppConfig("default", 1)])


def test_each_app_has_its_intake_queue_beside_the_public_one() -> None:
    """With several apps a worker consumes the public queue, each app's intake queue and each internal queue."""
    assert worker_queues(TWO) == [
        "imunban", "imunban.app.A", "imunban.app.B", "imunban.internal.A", "imunban.internal.B",
    ]  # fmt: skip
    assert worker_queues(ONE) == ["imunban", "imunban.internal"]


def test_intake_is_routed_by_its_app() -> None:
    """A served app goes to its queue; one app, no app, an unknown or malformed app: the public queue."""
    assert route_intake(TWO, {"app": "B"}) == intake_queue("B") == "imunban.app.B"
    assert route_intake(TWO, {"app": "C"}) == PUBLIC_QUEUE
    assert route_intake(TWO, {"app": ["B"]}) == PUBLIC_QUEUE
    assert route_intake(TWO, None) == PUBLIC_QUEUE
    assert route_intake(ONE, {"app": "default"}) == PUBLIC_QUEUE


def test_queue_kinds() -> None:
    """Intake queues are the public one and the apps' ones; internal ones carry delivery runs."""
    assert is_intake("imunban") and is_intake("imunban.app.A") and not is_intake("imunban.internal.A")
    assert is_internal("imunban.internal") and is_internal("imunban.internal.A") and not is_internal("imunban")


def test_the_delivery_gate_counts_runs_taken_and_closes_at_its_cap() -> None:
    """Runs taken and not finished count; at the cap the gate is full; a finished (or unknown) tag frees it."""
    gate = DeliveryGate(cap=2)
    gate.taken("t1")
    assert not gate.full()
    gate.taken("t2")
    assert gate.full()
    gate.done("t1")
    gate.done("unknown")
    assert not gate.full()
    assert not DeliveryGate().full()  # no cap (a plain celery worker): never full


def test_a_new_consumer_channel_starts_the_count_afresh() -> None:
    """Runs of a channel that closed (connection lost) stop counting once a new channel takes a run."""
    gate = DeliveryGate(cap=2)
    gate.taken("t1", owner=1)
    gate.taken("t2", owner=1)
    assert gate.full()
    gate.taken("t3", owner=2)
    assert not gate.full()


def test_a_full_gate_leaves_delivery_queues_out_and_a_refusal_intake_queues() -> None:
    """Full: the next pop offers only intake queues; after a full-Redis refusal only delivery queues."""
    queues = worker_queues(TWO)

    class Cycle:
        def consume(self, n: int) -> list[str]:
            return queues

    assert skipped_queues(False, False) is None
    full = skipped_queues(False, True)
    assert full is not None and _Without(Cycle(), full).consume(5) == ["imunban", "imunban.app.A", "imunban.app.B"]
    refused = skipped_queues(True, True)
    assert refused is not None and _Without(Cycle(), refused).consume(5) == ["imunban.internal.A", "imunban.internal.B"]


def test_the_celery_app_routes_intake_by_app_and_keeps_an_explicit_queue(tmp_path: Path) -> None:
    """send_task without a queue goes to the app's intake queue; with queue="imunban" it stays on the public one."""
    apps_file = tmp_path / "apps.toml"
    apps_file.write_text(
        '[apps.A]\nsdkappid = 1\nregion = "china"\nsecret_key = "x"\n'
        '[apps.B]\nsdkappid = 2\nregion = "china"\nsecret_key = "y"\n'
    )
    env = {"IMUNBAN_REDIS_URL": "redis://127.0.0.1:1/0", "IMUNBAN_APPS_FILE": str(apps_file)}
    route = create_celery(Settings.from_env(env)).amqp.router.route
    assert route({}, "imunban.unban", kwargs={"app": "B"})["queue"].name == "imunban.app.B"
    assert route({}, "imunban.cancel", kwargs={"app": "A"})["queue"].name == "imunban.app.A"
    assert route({}, "imunban.unban", kwargs={"app": "nope"})["queue"].name == PUBLIC_QUEUE
    assert route({"queue": "imunban"}, "imunban.unban", kwargs={"app": "B"})["queue"].name == PUBLIC_QUEUE
    assert route({}, "imunban.deliver", kwargs={"app": "B"})["queue"].name == "imunban.internal"
