from __future__ import annotations

from controller.runtime.failures import MAX_DELAY_S, FailureBackoff, backoff_delay


def test_the_delay_doubles_up_to_five_minutes() -> None:
    assert [backoff_delay(n) for n in range(1, 5)] == [5.0, 10.0, 20.0, 40.0]
    assert backoff_delay(50) == MAX_DELAY_S == 300.0


def test_a_key_backs_off_alone_and_a_success_resets_it() -> None:
    backoff = FailureBackoff()
    assert backoff.failed("poison", "RecursionError") == (5.0, True)
    assert backoff.failed("poison", "RecursionError") == (10.0, False)  # same error: no trace
    assert backoff.failed("other", "boom") == (5.0, True)
    assert backoff.failed("poison", "KeyError") == (20.0, True)  # a new error is logged again
    backoff.succeeded("poison")
    assert backoff.failures("poison") == 0
    assert backoff.failed("poison", "KeyError") == (5.0, True)
