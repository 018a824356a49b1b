"""Control verbs and the cluster audit source, end to end: the CLI against the simulated
cluster with the real controller applying (and recording) what a human asked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from controller.cli.main import cli
from controller.core.audit import Decision
from controller.core.canary import template_hash
from tests.runtime.harness import NS, Env, deployment_doc, lane_doc, running, wait

SIM_USER = "changelane-sim"  # the user name in the simulated cluster's kubeconfig


def run(env: Env, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--kubeconfig", str(env.kubeconfig)])


def release_name(env: Env) -> str:
    return f"web-{template_hash(env.deployment('web')['spec']['template'])}"


def records_of(env: Env, release: str) -> list[tuple[str, str]]:
    return [(r.decision.value, r.actor) for r in env.sink.records if r.release == release]


def slow_lane() -> dict[str, Any]:
    # A first step long enough that a human acts while the canary is at it.
    return lane_doc(
        steps=[{"weight": 50, "minDuration": "60s"}, {"weight": 100, "minDuration": "1s"}]
    )


def test_pause_resume_promote_and_abort_are_applied_and_recorded_with_identity(
    tmp_path: Path,
) -> None:
    with running(tmp_path, lane=slow_lane()) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"))
        env.set_image("web:2")
        name = release_name(env)
        env.wait_phase(["Progressing"], name=name)

        paused = run(env, "pause", name, "--as", "alice@example.com", "--wait", "20")
        assert paused.exit_code == 0, paused.output
        assert f"{NS}/{name}: pause by alice@example.com requested" in paused.output
        assert "now Paused" in paused.output
        assert ("paused", "alice@example.com") in records_of(env, name)

        resumed = run(env, "resume", name, "--as", "alice@example.com", "--wait", "20")
        assert resumed.exit_code == 0, resumed.output
        assert env.wait_phase(["Progressing"], name=name)["status"]["phase"] == "Progressing"
        wait(lambda: ("resumed", "alice@example.com") in records_of(env, name))

        promoted = run(env, "promote", name, "-n", NS, "--as", "alice@example.com", "--wait", "20")
        assert promoted.exit_code == 0, promoted.output
        env.wait_phase(["Promoted"], name=name)
        primary = env.deployment("web-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
        assert ("human_override", "alice@example.com") in records_of(env, name)
        annotations = env.release(name)["metadata"].get("annotations") or {}  # type: ignore[index]
        assert "changelane.dev/command" not in annotations  # consumed by the controller

        # Without --as the identity is the kubeconfig's user.
        env.set_image("web:3")
        second = release_name(env)
        env.wait_phase(["Progressing"], name=second)
        aborted = run(env, "abort", second, "--wait", "20")
        assert aborted.exit_code == 0, aborted.output
        rolled = env.wait_phase(["RolledBack"], name=second)
        assert rolled["status"]["rollbackReason"] == f"aborted by {SIM_USER}"
        wait(lambda: ("rolling_back", SIM_USER) in records_of(env, second))
        assert env.deployment("web-primary")["spec"]["template"]["spec"]["containers"][0][
            "image"
        ] == ("web:2")

        # A verb that no longer applies, and a release that does not exist.
        late = run(env, "resume", name)
        assert late.exit_code == 2 and "it is Promoted" in late.output
        missing = run(env, "abort", "web-nope")
        assert missing.exit_code == 1
        assert "no LaneRelease named 'web-nope' in any namespace" in missing.output
        missing_ns = run(env, "status", "web-nope", "-n", NS)
        assert missing_ns.exit_code == 1 and "in namespace 'shop'" in missing_ns.output


def test_status_shows_lanes_and_releases_with_measurements_and_conditions(
    tmp_path: Path,
) -> None:
    with running(tmp_path) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"))
        env.set_image("web:2-bad")
        name = release_name(env)
        env.wait_phase(["RolledBack"], name=name)

        view = json.loads(run(env, "status", name, "--json").output)
        assert view["phase"] == "RolledBack" and view["lane"] == "web-lane"
        assert "critical check errors Fail" in view["rollbackReason"]
        assert [m["check"] for m in view["lastMeasurements"]] == ["errors"]
        assert view["lastMeasurements"][0]["canary"] == 0.3
        assert {c["type"] for c in view["conditions"]} >= {"Progressing"}
        assert view["provenance"]["agent"] == "claude-code"

        text = run(env, "status", name).output
        assert "phase      RolledBack" in text and "errors" in text and "canary=0.3" in text
        assert "AnalysisFailed" in text

        overview = run(env, "status")
        assert overview.exit_code == 0
        assert "web-lane" in overview.output and name in overview.output
        lane = json.loads(run(env, "status", "web-lane", "--json").output)
        assert lane["mode"] == "enforce" and lane["suspended"] is False
        assert [r["release"] for r in lane["releases"]] == [name]


def test_audit_reads_the_cluster_like_a_log(tmp_path: Path) -> None:
    with running(tmp_path) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"))
        env.set_image("web:2")
        good = release_name(env)
        env.wait_phase(["Promoted"], name=good)
        env.set_image("web:3-bad")
        bad = release_name(env)
        env.wait_phase(["RolledBack"], name=bad)
        wait(lambda: ("rolled_back", "controller") in records_of(env, bad))

        out = run(env, "audit", "--cluster", "--since", "1h", "--json")
        assert out.exit_code == 0, out.output
        by_release = {item["release"]: item for item in json.loads(out.stdout)}
        assert by_release[good]["outcome"] == "Promoted"
        rolled = by_release[bad]
        assert rolled["outcome"] == "RolledBack" and rolled["workload"] == "web"
        assert "critical check errors Fail" in rolled["reason"]
        assert rolled["provenance"]["agent"] == "claude-code"
        [evidence] = rolled["evidence"]
        assert evidence["check"] == "errors" and evidence["canary"] == 0.3
        assert evidence["threshold"] == 0.05 and evidence["verdict"] == "Fail"

        # The same answer as the audit trail the controller wrote, from the cluster alone.
        only_bad = run(env, "audit", "--outcome", "RolledBack", "--json")  # cluster: default
        assert [i["release"] for i in json.loads(only_bad.stdout)] == [bad]
        table = run(env, "audit", "--since", "1h").output
        assert bad in table and "RolledBack" in table and "canary=0.3" in table

        shown = run(env, "audit", "show", bad)
        assert shown.exit_code == 0, shown.output
        for decision in ("release_seen", "started", "measurement", "rolling_back", "rolled_back"):
            assert decision in shown.output
        nowhere = run(env, "audit", "show", "web-nope")
        assert nowhere.exit_code == 1 and "not found" in nowhere.output


def test_a_spent_budget_suspends_the_lane_until_a_human_resumes_it(tmp_path: Path) -> None:
    lane = lane_doc()
    lane["spec"]["gates"] = {"autonomyBudget": {"maxChangeFailureRate": 0.0, "window": 1}}
    with running(tmp_path, lane=lane) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"))
        env.set_image("web:2-bad")
        env.wait_phase(["RolledBack"], name=release_name(env))

        def lane_status() -> dict[str, Any]:
            status: dict[str, Any] = (
                env.sim.store.get_obj("changelanes", None, "web-lane").get("status") or {}
            )
            return status

        wait(lambda: lane_status().get("suspended") is True)
        assert "1 of the last 1 releases rolled back" in lane_status()["suspendedReason"]
        wait(lambda: any(c["type"] == "Suspended" for c in lane_status().get("conditions", [])))
        wait(lambda: any(r.decision is Decision.LANE_SUSPENDED for r in env.sink.records))
        # The Event follows the record; under load it can trail it by a moment.
        wait(lambda: "LaneSuspended" in [e.get("reason") for e in _events(env)])

        env.set_image("web:3")
        held = release_name(env)
        gated = env.wait_phase(["Gated"], name=held)
        assert "laneSuspended" in gated["status"]["gateReason"]

        resumed = run(env, "lanes", "resume", "web-lane", "--as", "carol")
        assert resumed.exit_code == 0, resumed.output
        assert "resumed by carol" in resumed.output
        env.wait_phase(["Promoted"], name=held)
        wait(
            lambda: any(
                r.decision is Decision.LANE_RESUMED and r.actor == "carol" for r in env.sink.records
            )
        )
        assert lane_status()["resumedBy"] == "carol"
        again = run(env, "lanes", "resume", "web-lane")
        assert again.exit_code == 0 and "not suspended" in again.output
        assert run(env, "lanes", "resume", "no-lane").exit_code == 1

        audit = run(env, "audit", "--lane", "web-lane").output
        assert "lane web-lane: lane_suspended" in audit
        assert "lane web-lane: lane_resumed by carol" in audit


def _events(env: Env) -> list[dict[str, Any]]:
    store = env.sim.store
    rtype = store.rtype("events")
    return [store.to_obj(rtype, s) for s in store.list("events", None).items]
