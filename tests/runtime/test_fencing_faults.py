"""CI's slice of ``changelane bench fencing``: two controller processes with their own
tokens; a leader frozen during a delayed renewal, a renewal slower than the lease
duration, a leader paused and woken after the takeover, then 50% API errors. The full
run (30 rounds, 20 of them pauses, 30 s of errors) is ``changelane bench fencing``."""

from __future__ import annotations

import pytest

from controller.bench import fencing

pytestmark = pytest.mark.slow


def test_a_replica_that_lost_the_lease_never_acts() -> None:
    result = fencing.run(rounds=3, error_seconds=8.0, seed=7)
    report = fencing.table(result)
    assert result.violations == [], report
    assert {r.kind for r in result.rounds} == set(fencing.KINDS)
    assert all(r.takeover_s is not None for r in result.rounds), report
    # The checks looked at something: the old leaders kept working until they were frozen.
    assert result.mutating_requests > 100 and min(result.records.values()) > 0, report
    assert result.max_both_leading_s <= fencing.RETRY_PERIOD, report
    # Takeover within lease duration + one retry period (plus request latency).
    assert max(result.takeovers_s) <= fencing.LEASE_DURATION + fencing.RETRY_PERIOD + 0.5, report
    # Each replica said it lost leadership (once per term, with its reason).
    assert sum(result.lost_logged.values()) >= len(result.rounds), report
