from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from controller.workqueue import ShutDownError, WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_duplicates_are_processed_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ["a", "b", "a", "a"]:
        q.add(key)
    assert [q.get(0), q.get(0), q.get(0)] == ["a", "b", None]


def test_a_key_in_processing_is_requeued_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert q.get(0) == "a"
    q.add("a")
    assert q.get(0) is None  # not handed out twice concurrently
    q.done("a")
    assert q.get(0) == "a"


def test_add_after_waits_and_earliest_schedule_wins() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock)
    q.add_after("a", 10)
    q.add_after("a", 5)
    q.add_after("a", 20)
    assert q.get(0) is None
    clock.now = 5
    assert q.get(0) == "a"
    q.done("a")
    clock.now = 25
    assert q.get(0) is None  # the later schedules were superseded


def test_immediate_add_cancels_a_pending_delay() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock)
    q.add_after("a", 10)
    q.add("a")
    assert q.get(0) == "a"
    q.done("a")
    clock.now = 11
    assert q.get(0) is None


def test_shutdown_wakes_waiting_workers() -> None:
    q: WorkQueue[str] = WorkQueue()
    raised = threading.Event()

    def worker() -> None:
        try:
            q.get()
        except ShutDownError:
            raised.set()

    t = threading.Thread(target=worker)
    t.start()
    q.shut_down()
    t.join(5)
    assert raised.is_set()


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 3)), max_size=40))
def test_every_added_key_is_delivered_and_none_twice_while_processing(
    ops: list[tuple[str, int]],
) -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock)
    for key, delay in ops:
        q.add_after(key, delay)
    clock.now = 10
    seen = []
    while (key := q.get(0)) is not None:
        seen.append(key)
    assert sorted(seen) == sorted({k for k, _ in ops})


def test_urgent_keys_are_served_before_ordinary_ones() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ["d1", "d2", "d3"]:
        q.add(key)
    q.add("r1", urgent=True)
    q.add("d2", urgent=True)  # already waiting: moves up, and is not served twice
    assert [q.get(0) for _ in range(5)] == ["r1", "d2", "d1", "d3", None]
    assert q.depth() == 0


def test_a_key_made_urgent_while_processing_comes_back_urgent() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("r")
    assert q.get(0) == "r"
    q.add("d")
    q.add("r", urgent=True)
    q.add("r")  # an ordinary add does not demote it
    q.done("r")
    assert [q.get(0), q.get(0)] == ["r", "d"]


@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "urgent", "get", "done"]), st.sampled_from("abcd")),
        max_size=60,
    )
)
def test_urgent_lane_keeps_the_queue_contract(ops: list[tuple[str, str]]) -> None:
    """Whatever the mix: a waiting key is handed out once, never while it is processed,
    urgent keys first, and nothing added is lost."""
    q: WorkQueue[str] = WorkQueue()
    urgent: set[str] = set()  # the model: which waiting keys are urgent
    waiting: set[str] = set()
    processing: set[str] = set()
    dirty: dict[str, bool] = {}
    for op, key in ops:
        if op in ("add", "urgent"):
            is_urgent = op == "urgent"
            q.add(key, urgent=is_urgent)
            if key in processing:
                dirty[key] = dirty.get(key, False) or is_urgent
            else:
                waiting.add(key)
                if is_urgent:
                    urgent.add(key)
        elif op == "get":
            got = q.get(0)
            if not waiting:
                assert got is None
                continue
            assert got in waiting and got not in processing
            assert got in urgent or not urgent  # an ordinary key only when no urgent waits
            waiting.discard(got)
            urgent.discard(got)
            processing.add(got)
        elif key in processing:
            q.done(key)
            processing.discard(key)
            if key in dirty:
                waiting.add(key)
                if dirty.pop(key):
                    urgent.add(key)
        assert q.depth() == len(waiting)
