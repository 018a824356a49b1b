"""Replica mode: weight as the traffic share, moved without dropping availability."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.replica_plan import (
    ReplicaSplit,
    achievable_share,
    availability_safe,
    rollout_complete,
    split_for,
)


def test_weight_is_the_share_of_pods() -> None:
    assert split_for(4, 25) == ReplicaSplit(3, 1)
    assert split_for(4, 100) == ReplicaSplit(0, 4)
    assert split_for(10, 50) == ReplicaSplit(5, 5)
    assert split_for(4, 0) == ReplicaSplit(4, 0)
    # too few replicas: the closest share is recorded, not the requested one
    assert achievable_share(3, 25) == 33
    assert achievable_share(1, 10) == 50  # one extra pod rather than 100% to the canary
    # surge: canary pods beside an untouched primary, up to as many again
    assert split_for(4, 25, surge=True) == ReplicaSplit(4, 1)
    assert split_for(4, 50, surge=True) == ReplicaSplit(4, 4)
    assert split_for(4, 75, surge=True) == ReplicaSplit(1, 4)


@given(st.integers(1, 50), st.integers(1, 99), st.booleans())
def test_a_split_is_as_close_as_the_replicas_allow_and_never_everything_early(
    total: int, weight: int, surge: bool
) -> None:
    split = split_for(total, weight, surge=surge)
    assert split.canary >= 1 and split.primary >= 1
    if not surge and total > 1:
        assert split.primary + split.canary == total
        # within one pod of the exact share
        assert abs(split.canary - total * weight / 100) <= 1


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(0, 3),
    st.lists(st.integers(0, 100), min_size=1, max_size=6),
    st.randoms(use_true_random=False),
)
def test_ready_pods_never_drop_below_the_minimum_however_slowly_pods_start(
    total: int, max_unavailable: int, weights: list[int], rng: object
) -> None:
    """A simulated pair of Deployments: scale-downs remove ready pods at once, new pods
    become ready after random delays. Whatever the weights, ready pods stay at the minimum."""
    import random

    assert isinstance(rng, random.Random)
    need = max(0, total - max_unavailable)
    spec = ReplicaSplit(total, 0)
    ready = [total, 0]
    for weight in [*weights, 0]:
        for _ in range(40):
            safe = availability_safe(
                split_for(total, weight),
                total=total,
                max_unavailable=max_unavailable,
                primary_ready=ready[0],
                canary_ready=ready[1],
            )
            spec = safe
            for i, want in enumerate((spec.primary, spec.canary)):
                ready[i] = min(ready[i], want)  # scale down: gone at once
            assert ready[0] + ready[1] >= need, (weight, spec, ready)
            for i, want in enumerate((spec.primary, spec.canary)):
                ready[i] += rng.randint(0, want - ready[i])  # scale up: some become ready
        # given time, the target is reached
        target = split_for(total, weight)
        for _ in range(40):
            spec = availability_safe(
                target,
                total=total,
                max_unavailable=max_unavailable,
                primary_ready=ready[0],
                canary_ready=ready[1],
            )
            for i, want in enumerate((spec.primary, spec.canary)):
                ready[i] = min(ready[i], want)
                ready[i] = want  # all become ready eventually
        assert spec == target


def test_rollout_complete_as_kubectl_judges_it() -> None:
    done = {
        "metadata": {"generation": 3},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 3,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
        },
    }
    assert rollout_complete(done)
    old_pods_left = {**done, "status": {**done["status"], "replicas": 3}}
    assert not rollout_complete(old_pods_left)
    not_observed = {**done, "metadata": {"generation": 4}}
    assert not rollout_complete(not_observed)
    unavailable = {**done, "status": {**done["status"], "availableReplicas": 1}}
    assert not rollout_complete(unavailable)


def test_a_step_records_the_achievable_share() -> None:
    """docs-site's first step is 10%: with 3 replicas one pod in three is 33%, recorded as
    such; with 10 replicas it is exact."""
    from controller.core.release_machine import Observation, decide
    from tests.unit.test_release_machine import LANE, OPEN, T0, new_release

    decision = decide(LANE, new_release(), Observation(now=T0, gates=OPEN, replica_total=3))
    assert decision.status.weight == 10
    assert decision.status.traffic_share == 33
    assert [r.reason for r in decision.records][-1] == (
        "canary weight set to 10% (33% of the pods: the closest 3 replicas allow)"
    )
    exact = decide(LANE, new_release(), Observation(now=T0, gates=OPEN, replica_total=10))
    assert exact.status.traffic_share == 10
    assert [r.reason for r in exact.records][-1] == "canary weight set to 10%"
