"""The Python producer API on a real redis-server: enqueue, schedule, cancel, bulk."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imunban.errors import ValidationError
from imunban.keys import Keys
from imunban.producer import Producer, _single_member
from imunban.settings import Settings
from imunban.stats import status
from imunban.trace import trace
from imunban.validation import UnbanRequest, request_from_mapping

KEYS = Keys("imunban")
AT = 1_893_456_000  # 2030-01-01T00:00:00Z


@pytest.fixture
def producer(r: redis.Redis) -> Producer:
    return Producer.on(r, Settings(key_prefix=KEYS.prefix))


def test_enqueue_now_and_dedup(producer: Producer, r: redis.Redis) -> None:
    """Members enqueued now are ready; the same member again replaces, not duplicates."""
    first = producer.enqueue("g", ["a", "b", "a"])
    assert (first.ready, first.scheduled, first.replaced) == (2, 0, 0)
    again = producer.enqueue("g", "a")
    assert (again.ready, again.replaced) == (1, 1)
    assert status(r, KEYS)["queued"] == 2


@pytest.mark.parametrize("at", [AT, float(AT), str(AT), "2030-01-01T00:00:00Z", datetime(2030, 1, 1, tzinfo=UTC)])
def test_enqueue_scheduled_forms(producer: Producer, r: redis.Redis, at: object) -> None:
    """'at' as Unix seconds, numeric string, ISO-8601 or datetime schedules at that time."""
    result = producer.enqueue("g", ["a"], at=at)  # type: ignore[arg-type]
    assert result.scheduled == 1
    assert trace(r, KEYS, "g", "a")["due_ms"] == AT * 1000


def test_latest_instruction_wins(producer: Producer, r: redis.Redis) -> None:
    """A later enqueue moves a pending request's due time, earlier or later."""
    producer.enqueue("g", ["a"], at=AT + 60)
    producer.enqueue("g", ["a"], at=AT)
    assert trace(r, KEYS, "g", "a")["due_ms"] == AT * 1000
    producer.enqueue("g", ["a"])
    assert trace(r, KEYS, "g", "a")["state"] == "ready"


def test_high_priority_is_recorded(producer: Producer, r: redis.Redis) -> None:
    """priority='high' marks the request high."""
    producer.enqueue("g", ["a"], priority="high")
    assert trace(r, KEYS, "g", "a")["priority"] == "high"


@pytest.mark.parametrize(
    ("group", "members", "kwargs", "field"),
    [
        ("", ["a"], {}, "group_id"),
        ("g", [], {}, "members"),
        ("g", ["a", ""], {}, "members[1]"),
        ("g", ["a"], {"at": "soon"}, "at"),
        ("g", ["a"], {"priority": "urgent"}, "priority"),
    ],
)
def test_enqueue_rejects_bad_input_storing_nothing(
    producer: Producer, r: redis.Redis, group: str, members: list[str], kwargs: dict[str, str], field: str
) -> None:
    """Bad input raises ValidationError naming the field and stores nothing."""
    with pytest.raises(ValidationError) as info:
        producer.enqueue(group, members, **kwargs)
    assert info.value.field == field
    assert r.dbsize() == 0


def test_cancel_counts_pending_only(producer: Producer, r: redis.Redis) -> None:
    """cancel removes ready and scheduled requests and says how many were pending."""
    producer.enqueue("g", ["a"])
    producer.enqueue("g", ["b"], at=AT)
    assert producer.cancel("g", ["a", "b", "c"]) == 2
    snapshot = status(r, KEYS)
    assert (snapshot["queued"], snapshot["scheduled"]) == (0, 0)
    assert producer.cancel("g", "a") == 0
    with pytest.raises(ValidationError):
        producer.cancel("g", [""])


def test_bulk_mixed_items(producer: Producer, r: redis.Redis) -> None:
    """bulk takes mappings of both shapes and UnbanRequest objects."""
    result = producer.bulk(
        [
            {"group_id": "g", "member": "a"},
            {"group_id": "g", "members": ["b", "c"], "at": AT, "priority": "high"},
            UnbanRequest("h", ("d",)),
        ]
    )
    assert (result.ready, result.scheduled) == (2, 2)


def test_bulk_bad_item_stores_nothing(producer: Producer, r: redis.Redis) -> None:
    """One bad item anywhere: ValidationError naming requests[i].field, and nothing stored."""
    items: list[dict[str, object]] = [{"group_id": "g", "member": f"u{i}"} for i in range(5_000)]
    items.insert(3_000, {"group_id": "g", "member": "x" * 40})
    with pytest.raises(ValidationError) as info:
        producer.bulk(items)
    assert info.value.field == "requests[3000].member"
    assert r.dbsize() == 0


def test_bulk_keeps_latest_instruction_per_member(producer: Producer, r: redis.Redis) -> None:
    """Within one bulk call, interleaved groups included, the last item for a member wins."""
    items = [{"group_id": f"g{i % 7}", "member": f"u{i % 11}", "at": AT + i} for i in range(300)]
    producer.bulk(items)
    for i in range(300 - 77, 300):
        assert trace(r, KEYS, f"g{i % 7}", f"u{i % 11}")["due_ms"] == (AT + i) * 1000


def test_bulk_large_is_fast_enough_to_be_useful(producer: Producer, r: redis.Redis) -> None:
    """100,000 members in one bulk call are all stored (rate printed, not asserted: CI machines vary)."""
    start = time.perf_counter()
    result = producer.bulk({"group_id": f"g{i // 100}", "member": f"u{i}"} for i in range(100_000))
    elapsed = time.perf_counter() - start
    assert result.ready == 100_000
    assert status(r, KEYS)["queued"] == 100_000
    print(f"bulk: {100_000 / elapsed:,.0f} members/s")


def test_from_env_uses_settings(redis_url: str, r: redis.Redis) -> None:
    """from_env connects to IMUNBAN_REDIS_URL with IMUNBAN_KEY_PREFIX."""
    settings = Settings.from_env({"IMUNBAN_REDIS_URL": redis_url, "IMUNBAN_KEY_PREFIX": "other"})
    Producer.from_env(settings).enqueue("g", ["a"])
    assert status(r, Keys("other"))["queued"] == 1


_ids = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), min_size=0, max_size=50)
_values = st.one_of(_ids, st.integers(), st.none(), st.lists(_ids, max_size=2))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["group_id", "member", "members", "at"]), _values, max_size=3))
def test_fast_path_agrees_with_full_validation(item: dict[str, object]) -> None:
    """The bulk fast path yields the same request, or the same error, as request_from_mapping."""
    try:
        expected: UnbanRequest | str = request_from_mapping(item)
    except ValidationError as exc:
        expected = str(exc)
    try:
        got: UnbanRequest | str | None = _single_member(item, {})
    except ValidationError as exc:
        got = str(exc)
    if got is not None:
        assert got == expected


def test_function_level_api_uses_the_environment(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """imunban.enqueue / imunban.cancel / imunban.bulk work on a producer built from IMUNBAN_*."""
    import imunban
    from imunban import reset_default_producer

    monkeypatch.setenv("IMUNBAN_REDIS_URL", redis_url)
    monkeypatch.setenv("IMUNBAN_KEY_PREFIX", "fn")
    reset_default_producer()
    try:
        assert imunban.enqueue("g", ["a", "b"]).ready == 2
        assert imunban.enqueue("g", "c", at=time.time() + 3600).scheduled == 1
        assert imunban.cancel("g", ["c"]) == 1
        assert imunban.bulk([{"group_id": "h", "member": "x"}]).stored == 1
        with pytest.raises(ValidationError):
            imunban.enqueue("", ["a"])
    finally:
        reset_default_producer()
