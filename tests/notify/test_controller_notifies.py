"""The real controller on the simulated cluster, its notifier subscribed to its records."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from controller.adapters.audit.sink import FanOutAuditSink
from controller.adapters.notify.dispatcher import RetryPolicy
from controller.runtime.notifications import attach_notifier, webhook_defaults
from tests.notify.receiver import receiver
from tests.runtime.harness import lane_doc, new_controller, running, wait


def test_a_rollback_reaches_the_receiver_with_evidence_within_5s(tmp_path: Path) -> None:
    lane = lane_doc()
    # The lane's own destination names a Secret key that is not mounted: its error shows in
    # the lane's status, and the rollback happens all the same.
    lane["spec"]["notifications"] = {
        "destinations": [{"name": "team-chat", "kind": "apprise", "secretKey": "slack"}]
    }
    with receiver() as rx, running(tmp_path, lane=lane, start=False) as env:
        fanout = FanOutAuditSink([env.sink])
        c = new_controller(env.kubeconfig, env.sim, fanout, instance="c-0")  # type: ignore[arg-type]
        notifier = attach_notifier(
            c,
            defaults=webhook_defaults(rx.url),
            secret_dir=tmp_path / "secret",
            dashboard_url="http://dash.example",
            retry=RetryPolicy(attempts=2, initial_wait=0.05),
        )
        fanout.add(notifier)
        env.controllers.append(c)
        c.start()
        env.sim.store.create("deployments", _deployment())
        wait(lambda: env.deployment("web-primary") is not None)
        env.set_image("web:2-bad")
        rel = env.wait_phase(["RolledBack"])
        events = rx.wait_for(1, timeout=10)
        decided = next(r for r in env.sink.records if r.decision.value == "rolling_back")
        wait(lambda: _lane_notifications(env) != [], timeout=10)
        states = _lane_notifications(env)
        notifier.close()
    rolled = [e for e in events if e.body["type"] == "dev.changelane.release.rolledBack"]
    assert rolled, [e.body["type"] for e in events]
    arrived = datetime.now(UTC).timestamp() - (time.monotonic() - rolled[0].at)
    assert arrived - decided.time.timestamp() < 5.0
    data = rolled[0].body["data"]
    assert data["release"] == rel["metadata"]["name"]
    assert data["evidence"][0]["check"] == "errors"
    assert data["evidence"][0]["threshold"] == 0.05
    assert data["evidence"][0]["canary"] == 0.3
    assert data["agent"] == "claude-code"
    chat = next(s for s in states if s["destination"] == "team-chat")
    assert chat["ok"] is False
    assert "key 'slack' not found in the notification Secret" in chat["lastError"]


def _lane_notifications(env: object) -> list[dict[str, object]]:
    lane = env.sim.store.get_obj("changelanes", None, "web-lane")  # type: ignore[attr-defined]
    return list((lane.get("status") or {}).get("notifications") or [])


def _deployment() -> dict[str, object]:
    from tests.runtime.harness import deployment_doc

    return deployment_doc()
