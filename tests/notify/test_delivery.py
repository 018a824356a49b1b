"""The notifier against real HTTP receivers on loopback: one that works, one that is down,
one that is slow, one that answers 5xx then recovers, one that answers 4xx."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from controller.adapters.notify.dispatcher import DeliveryOutcome, Notifier, RetryPolicy
from controller.adapters.notify.transports import TransportFactory
from controller.core.audit import Decision
from controller.core.models.notifications import NotificationsSpec
from tests.notify.receiver import closed_port_url, receiver
from tests.notify.records import record

FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0.05, max_wait=0.2)


class Recorder:
    def __init__(self) -> None:
        self.outcomes: list[tuple[str, DeliveryOutcome]] = []
        self.counts: list[tuple[str, str, str, str]] = []

    def status(self, lane: str, outcome: DeliveryOutcome) -> None:
        self.outcomes.append((lane, outcome))

    def count(self, *labels: str) -> None:
        self.counts.append(labels)  # type: ignore[arg-type]

    def wait(self, n: int = 1, timeout: float = 10.0) -> list[tuple[str, DeliveryOutcome]]:
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.outcomes


def notifier(
    *destinations: dict[str, Any], secret_dir: Path | None = None, timeout: float = 2.0
) -> tuple[Notifier, Recorder]:
    rec = Recorder()
    lane = NotificationsSpec.model_validate({"destinations": list(destinations)})
    n = Notifier(
        lambda name: lane if name == "docs" else None,
        transports=TransportFactory(secret_dir, timeout=timeout),
        dashboard_url="http://127.0.0.1:8080",
        retry=FAST_RETRY,
        count_attempt=rec.count,
        write_status=rec.status,
    )
    return n, rec


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "hook", "kind": "webhook", "url": url, **extra}


def test_a_rollback_arrives_as_a_cloudevent_with_its_evidence() -> None:
    with receiver() as rx:
        n, rec = notifier(hook(rx.url))
        emitted = time.monotonic()
        n.emit(record())
        got = rx.wait_for(1)
        n.close()
    assert got, "nothing arrived"
    assert got[0].at - emitted < 5.0
    event = got[0].body
    assert got[0].headers["content-type"] == "application/cloudevents+json"
    assert event["specversion"] == "1.0"
    assert event["type"] == "dev.changelane.release.rolledBack"
    assert event["source"] == "/changelane/controller"
    data = event["data"]
    assert (data["release"], data["lane"], data["workload"]) == ("site-abc123", "docs", "site")
    assert (data["agent"], data["model"]) == ("claude-code", "claude-opus-4")
    assert data["change"] == "https://git.example/pr/7"
    assert data["evidence"][0] == {
        "check": "error-rate",
        "verdict": "Fail",
        "canary": 0.15,
        "baseline": 0.0,
        "threshold": 0.05,
        "statistic": "msprt p=8.8e-07 < alpha 0.01",
        "message": "",
    }
    assert data["dashboard"] == "http://127.0.0.1:8080/releases/web/site-abc123"
    assert rec.wait(1)[0][1].ok
    assert rec.counts == [("docs", "hook", "rolledBack", "delivered")]


def test_a_record_flushed_twice_is_announced_once() -> None:
    with receiver() as rx:
        n, rec = notifier(hook(rx.url))
        n.emit(record())
        n.emit(record())
        rec.wait(1)
        n.close()
    assert len(rx.received) == 1


def test_a_receiver_that_is_down_never_delays_the_decision_and_the_error_is_clear() -> None:
    url = closed_port_url()
    n, rec = notifier(hook(url))
    started = time.monotonic()
    n.emit(record())
    assert time.monotonic() - started < 0.5  # emit only queues (the next test shows it)
    [(lane, outcome)] = rec.wait(1)
    n.close()
    assert lane == "docs" and not outcome.ok
    assert outcome.error is not None
    assert "connection refused" in outcome.error
    assert "s3cr3t" not in outcome.error  # the URL's path (its token) is never shown
    assert [c[3] for c in rec.counts] == ["retrying", "retrying", "gave_up"]
    assert [a.number for a in n.attempts] == [1, 2, 3]


def test_a_slow_receiver_times_out_without_blocking_emit() -> None:
    with receiver(delay=1.5) as rx:
        n, rec = notifier(hook(rx.url), timeout=1.0)
        started = time.monotonic()
        n.emit(record())
        assert time.monotonic() - started < 0.5  # sending inline would wait the 1 s timeout
        [(_, outcome)] = rec.wait(1, timeout=15)
        n.close(wait=False)
    assert not outcome.ok and outcome.error is not None and "timed out" in outcome.error


def test_5xx_is_retried_with_backoff_until_delivered() -> None:
    with receiver(fail_first=2, fail_status=503) as rx:
        n, rec = notifier(hook(rx.url))
        n.emit(record())
        [(_, outcome)] = rec.wait(1)
        n.close()
    assert outcome.ok
    assert [c[3] for c in rec.counts] == ["retrying", "retrying", "delivered"]
    assert "HTTP 503" in (n.attempts[0].error or "")


def test_4xx_is_not_retried() -> None:
    with receiver(status=404) as rx:
        n, rec = notifier(hook(rx.url))
        n.emit(record())
        [(_, outcome)] = rec.wait(1)
        n.close()
    assert not outcome.ok and "HTTP 404" in (outcome.error or "")
    assert [c[3] for c in rec.counts] == ["refused"]


def test_a_malformed_destination_is_refused_with_a_clear_error() -> None:
    n, rec = notifier(hook("ftp://127.0.0.1/x"))
    n.emit(record())
    [(_, outcome)] = rec.wait(1)
    n.close()
    assert outcome.error == (
        "destination hook: webhook URL must be http(s)://host/..., got ftp://127.0.0.1/..."
    )


def test_urls_come_from_the_mounted_secret(tmp_path: Path) -> None:
    with receiver() as rx:
        (tmp_path / "hook-url").write_text(rx.url + "\n")
        n, rec = notifier(
            {"name": "hook", "kind": "webhook", "secretKey": "hook-url"},
            {"name": "missing", "kind": "webhook", "secretKey": "nope"},
            secret_dir=tmp_path,
        )
        n.emit(record())
        outcomes = {o.destination: o for _, o in rec.wait(2)}
        n.close()
    assert outcomes["hook"].ok and len(rx.received) == 1
    assert "key 'nope' not found in the notification Secret" in (outcomes["missing"].error or "")


def test_chat_destinations_go_through_apprise() -> None:
    with receiver() as rx:
        apprise_url = rx.url.replace("http://", "json://")
        n, rec = notifier({"name": "chat", "kind": "apprise", "url": apprise_url})
        n.emit(record())
        got = rx.wait_for(1)
        rec.wait(1)
        n.close()
    assert got and got[0].body["title"] == "[changelane] site-abc123 rolled back"
    assert "limit 0.05" in got[0].body["message"]
    assert rec.outcomes[0][1].ok


def test_an_unknown_apprise_scheme_is_refused() -> None:
    n, rec = notifier({"name": "chat", "kind": "apprise", "url": "nosuchservice://x/y"})
    n.emit(record())
    [(_, outcome)] = rec.wait(1)
    n.close()
    assert "not a URL apprise understands" in (outcome.error or "")


def test_a_release_gated_longer_than_the_limit_is_announced_once() -> None:
    with receiver() as rx:
        n, _rec = notifier(hook(rx.url, gatedAfter="1s"))
        n.emit(record(Decision.GATED, n=1, reason="outside the change window"))
        n.emit(record(Decision.GATED, n=2, reason="another reason, same gating"))
        got = rx.wait_for(1, timeout=5)
        time.sleep(0.3)
        # A second release that starts before its limit is not announced.
        n.emit(record(Decision.GATED, n=1, id="uid-2/1", release="other"))
        n.emit(record(Decision.STARTED, n=2, id="uid-2/2", release="other"))
        time.sleep(1.3)
        n.close()
    assert len(rx.received) == 1
    data = got[0].body["data"]
    assert data["event"] == "gated" and data["heldSeconds"] == 1.0
    assert data["reason"] == "outside the change window"
