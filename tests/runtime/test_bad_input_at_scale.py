"""Bad input at scale: a huge object, a LaneRelease whose status does not parse while its
lane is analysed on the lane tick, and a lane that selects more workloads than a lane may
manage. Each time the controller keeps serving the others and reports the bad one
precisely (status condition, Event, log), and what it holds for the bad one stays bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.flags.lane_gates import LaneGates
from controller.adapters.kube.client import api_client
from controller.adapters.kube.connection import KubeConnection
from controller.bench.fencing_replica import ImageJudge
from controller.bench.grouped_answers import grouped_series
from controller.core.analysis import CheckSample, ReleaseParams
from controller.core.lane_analysis import GroupAnswer
from controller.runtime.manager import Controller, Settings
from tests.runtime.harness import (
    NS,
    AlwaysOn,
    Env,
    deployment_doc,
    lane_doc,
    provenance,
    running,
    wait,
)
from tests.runtime.test_bad_input import (
    _adopted,
    _events,
    _fast_lane,
    _other_lane_ships,
    _release_name,
    _start_other_lane,
)

pytestmark = pytest.mark.slow

SEL = 'namespace="{{ namespace }}", app="{{ workload }}", track="{{ track }}"'
WINDOW = "{{ window }}"


class HealthyPrometheus:
    """A grouped-query port answering like Prometheus: one series per listed workload and
    track, no errors, 100 requests per tick."""

    min_window_seconds = 1

    def __init__(self) -> None:
        self.queries = 0

    def query_groups(
        self, promql: str, labels: Mapping[str, str], at: float, what: str
    ) -> GroupAnswer | str:
        self.queries += 1
        value = 0.0 if '"5.."' in promql else 100.0
        return {
            (s[labels["namespace"]], s[labels["workload"]], s[labels["track"]]): value
            for s in grouped_series(promql) or []
        }

    def fetch(self, check: Any, params: ReleaseParams) -> CheckSample:
        raise AssertionError("the lane's templates have a grouped form")


def _analysed_lane() -> dict[str, Any]:
    lane = lane_doc(
        "web-lane",
        steps=[{"weight": 50, "minDuration": "1h"}, {"weight": 100, "minDuration": "0s"}],
        progressDeadline="30s",
    )
    lane["spec"]["gates"] = {"maxConcurrentReleases": 5}  # both releases in flight at once
    lane["spec"]["analysis"]["checks"] = [
        {
            "name": "error-rate",
            "kind": "sequential",
            "errorsQuery": "sum(increase(http_requests_total{"
            + SEL
            + ', code=~"5.."}[{{ window }}]))',
            "totalQuery": "sum(increase(http_requests_total{" + SEL + "}[{{ window }}]))",
            "inconclusiveLimit": 100000,
        }
    ]
    return lane


def _controller_with_lane_ticks(env: Env, metrics: HealthyPrometheus) -> Controller:
    controller = Controller(
        KubeConnection(api_client(str(env.kubeconfig))),
        gates=LaneGates(AlwaysOn()),
        analyzer=ImageJudge(),  # never used: the lane tick measures
        sinks=[env.sink],
        settings=Settings(
            instance="c-0", lease_namespace=NS, lease_duration=4, renew_deadline=3, retry_period=1
        ),
        lane_metrics=metrics,
    )
    env.controllers.append(controller)
    controller.start()
    return controller


def _has_primary(env: Env, name: str) -> bool:
    try:
        return _adopted(env, name)
    except Exception:  # no primary yet (or never)
        return False


def _last_analysis(env: Env, name: str) -> str | None:
    rel = env.release(name) or {}
    return (rel.get("status") or {}).get("lastAnalysisAt")


def test_a_release_whose_status_does_not_parse_is_reported_and_its_lane_keeps_ticking(
    tmp_path: Path,
) -> None:
    with running(tmp_path, lane=_analysed_lane(), start=False) as env:
        metrics = HealthyPrometheus()
        for name in ("web", "shop"):
            env.sim.store.create("deployments", deployment_doc(name, image=f"{name}:1"))
        _controller_with_lane_ticks(env, metrics)
        wait(lambda: _adopted(env, "web") and _adopted(env, "shop"), timeout=20)
        names = {}
        for name in ("web", "shop"):
            env.set_image(f"{name}:2", name=name)
            names[name] = _release_name(env, name)
        for name in names.values():
            wait(lambda n=name: _last_analysis(env, n) is not None, timeout=20)

        bad = env.sim.store.get_obj("lanereleases", NS, names["web"])
        bad["status"]["stepStartedAt"] = "yesterday"  # the API's schema lets it through
        env.sim.store.update(
            "lanereleases", bad, namespace=NS, name=names["web"], subresource="status"
        )

        def invalid() -> dict[str, Any]:
            status = (env.release(names["web"]) or {}).get("status") or {}
            return next(c for c in status.get("conditions", []) if c["type"] == "InvalidState")

        wait(lambda: "status.stepStartedAt" in invalid()["message"], timeout=20)
        assert invalid()["status"] == "True"
        assert any(
            names["web"] in (e.get("involvedObject") or {}).get("name", "")
            for e in _events(env, "InvalidState")
        )
        wait(lambda: env.deployment("web")["spec"]["replicas"] == 0)  # canary held at zero
        # The other release of the lane is still measured on every tick.
        seen: set[str | None] = set()

        def measured_again() -> bool:
            seen.add(_last_analysis(env, names["shop"]))
            return len(seen) >= 3

        wait(measured_again, timeout=20)
        assert metrics.queries > 0


def test_a_lane_selecting_more_workloads_than_allowed_manages_only_its_limit(
    tmp_path: Path,
) -> None:
    with running(tmp_path, lane=_fast_lane("web-lane"), max_lane_workloads=2) as env:
        names = [f"web-{i}" for i in range(5)]
        for name in names:
            env.sim.store.create("deployments", deployment_doc(name, image=f"{name}:1"))
        _start_other_lane(env)

        def condition() -> dict[str, Any]:
            lane = env.sim.store.get_obj("changelanes", "", "web-lane")
            return next(c for c in lane["status"]["conditions"] if c["type"] == "WorkloadLimit")

        wait(lambda: condition()["status"] == "True", timeout=20)
        wait(lambda: sum(_has_primary(env, n) for n in names) == 2, timeout=20)
        message = condition()["message"]
        assert "limit of 2" in message and "2 managed, 3 left alone" in message
        assert "--max-lane-workloads" in message
        left_alone = [n for n in names if not _has_primary(env, n)]
        assert len(left_alone) == 3
        for name in left_alone:  # untouched: no primary, replicas and rollout as they were
            dep = env.deployment(name)
            assert dep["spec"]["replicas"] == 2 and not dep["spec"].get("paused")
        store = env.sim.store
        events = [store.to_obj(store.rtype("events"), e) for e in store.list("events", None).items]
        limit_events = [e for e in events if e.get("reason") == "WorkloadLimitReached"]
        assert limit_events and limit_events[0]["involvedObject"]["name"] == "web-lane"
        assert "limit of 2" in limit_events[0]["message"]
        _other_lane_ships(env)  # the api-lane (its own single workload) is served as usual


def test_a_huge_provenance_value_is_rejected_naming_it_and_others_ship(tmp_path: Path) -> None:
    with running(tmp_path, lane=_fast_lane("web-lane")) as env:
        env.sim.store.create("deployments", deployment_doc())
        _start_other_lane(env)
        wait(lambda: _adopted(env, "web"), timeout=20)
        huge = provenance(image="web:2")
        huge["changelane.dev/tests"] = "x" * 1_000_000  # a 1 MB annotation
        env.set_image("web:2", annotations=huge)
        name = _release_name(env, "web")
        done = env.wait_phase(["Rejected", "Promoted", "RolledBack"], name=name)
        status = done["status"]
        assert status["phase"] == "Rejected", status
        assert "changelane.dev/tests" in status["message"] and "4096" in status["message"]
        # The record keeps the reason, not the megabyte.
        assert len(str(done)) < 64_000
        assert env.deployment("web")["spec"]["replicas"] == 0
        _other_lane_ships(env)
