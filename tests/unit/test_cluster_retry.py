"""The backoff between rounds of script calls on a Redis Cluster (TRYAGAIN, CLUSTERDOWN, a dead master)."""

from __future__ import annotations

import pytest

from imunban.cluster_scripts import BACKOFF_CAP_S, REDIRECT_BUDGET_S, retry_delay_s


def test_delay_doubles_from_the_base_up_to_the_cap() -> None:
    """Round 1 waits the base, each round twice the last, never more than the cap."""
    delays = [retry_delay_s(n, 0.0, base_s=0.05, cap_s=1.0) for n in range(1, 9)]
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert retry_delay_s(10_000, 0.0) == BACKOFF_CAP_S  # no overflow on a long run


def test_delay_stops_at_the_budget_measured_by_the_injected_clock() -> None:
    """Elapsed time from the caller's clock: the last delay ends at the budget, past it there is none."""
    clock = [100.0]
    started = clock[0]
    waited = 0.0
    rounds = 0
    while (delay := retry_delay_s(rounds + 1, clock[0] - started, budget_s=3.0)) is not None:
        clock[0] += delay  # the injected sleep advances the clock
        waited += delay
        rounds += 1
    assert waited == pytest.approx(3.0)
    assert rounds == 7  # 0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 1.0 = 2.55, then 0.45 (the rest), then none
    assert retry_delay_s(1, REDIRECT_BUDGET_S) is None


def test_round_counts_from_one() -> None:
    """Round 0 is a caller's mistake, not a zero delay."""
    with pytest.raises(ValueError, match="from 1"):
        retry_delay_s(0, 0.0)
