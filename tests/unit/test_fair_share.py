"""FairShare: weighted shares of a worker's threads, and which run gives way to whom (no I/O)."""

from __future__ import annotations

from imunban.fairness import FairShare, shares


def test_shares_are_weighted_by_rate_limit_and_at_least_one() -> None:
    assert shares(8, {"a": 190, "b": 190}) == {"a": 4, "b": 4}
    assert shares(8, {"a": 300, "b": 100}) == {"a": 6, "b": 2}
    assert shares(4, {"a": 1000, "b": 1}) == {"a": 3, "b": 1}


def test_only_runs_beyond_the_share_give_way_and_only_to_a_waiting_app() -> None:
    waiting = {"a": False, "b": False}
    asked: list[str] = []

    def is_waiting(app: str) -> bool:
        asked.append(app)
        return waiting[app]

    now = [0.0]
    fair = FairShare(4, {"a": 1, "b": 1}, is_waiting, recheck_s=0.05, clock=lambda: now[0])
    turns = [fair.enter("a") for _ in range(4)]  # app a holds the whole pool; b has nothing waiting
    assert not any(t.give_way() for t in turns)
    assert asked == ["b"]  # one look-up, then the cached answer
    waiting["b"] = True
    assert not any(t.give_way() for t in turns)  # still the cached "nobody waits"
    now[0] = 0.1
    # b waits now: exactly the two runs beyond a's share of two give way, the others carry on.
    assert [t.give_way() for t in turns] == [True, True, False, False]
    assert fair.running() == {"a": 2, "b": 0} and fair.gave_way == {"a": 2, "b": 0}
    for t in turns:
        with t:
            pass  # leaving a run that gave way does not count it out twice
    assert fair.running() == {"a": 0, "b": 0}


def test_a_run_within_its_share_never_gives_way() -> None:
    fair = FairShare(4, {"a": 1, "b": 1}, lambda app: True)
    a1, a2, b1 = fair.enter("a"), fair.enter("a"), fair.enter("b")
    assert not a1.give_way() and not a2.give_way() and not b1.give_way()


def test_a_broker_error_counts_as_nobody_waiting() -> None:
    def broken(app: str) -> bool:
        raise ConnectionError("broker away")

    fair = FairShare(2, {"a": 1, "b": 1}, broken)
    turns = [fair.enter("a") for _ in range(2)]
    assert not any(t.give_way() for t in turns)
