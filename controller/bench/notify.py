"""Notification benchmark: what ``emit`` costs the decision path, and how long delivery
takes, against a real loopback receiver that is healthy, slow or down.

The point of the design is that the first number stays in microseconds whatever the
receiver does; the second is what on-call waits for.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from controller.adapters.notify.dispatcher import Notifier, RetryPolicy
from controller.adapters.notify.transports import TransportFactory
from controller.core.audit import AuditProvenance, AuditRecord, Decision, Evidence
from controller.core.models.notifications import NotificationsSpec

SCENARIOS = ("healthy", "slow", "down")
#: The slow receiver answers after this long (within the 0.5 s client timeout).
SLOW_S = 0.3


@contextmanager
def _receiver(delay: float) -> Iterator[tuple[str, dict[str, float]]]:
    arrivals: dict[str, float] = {}  # CloudEvent id -> first arrival

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if delay:
                time.sleep(delay)
            arrivals.setdefault(str(json.loads(body)["data"]["recordId"]), time.monotonic())
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", arrivals
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


def _record(n: int) -> AuditRecord:
    return AuditRecord(
        id=f"bench/{n}",
        time=datetime.now(UTC),
        lane="docs",
        namespace="web",
        workload="site",
        release=f"site-{n}",
        decision=Decision.ROLLING_BACK,
        reason="critical check error-rate Fail",
        provenance=AuditProvenance(agent="claude-code", model="m", change="c"),
        evidence=[Evidence(check="error-rate", verdict="Fail", canary=0.2, threshold=0.05)],
    )


def _scenario(name: str, records: int) -> dict[str, Any]:
    delay = SLOW_S if name == "slow" else 0.0
    with _receiver(delay) as (url, arrivals):
        target = _closed_port() if name == "down" else url
        spec = NotificationsSpec.model_validate(
            {"destinations": [{"name": "hook", "kind": "webhook", "url": target}]}
        )
        notifier = Notifier(
            lambda lane: spec,
            transports=TransportFactory(timeout=0.5),
            retry=RetryPolicy(attempts=2, initial_wait=0.05, max_wait=0.1),
            workers=4,
        )
        emits, sent = [], {}
        for n in range(records):
            record = _record(n)
            started = time.monotonic()
            notifier.emit(record)
            emits.append(time.monotonic() - started)
            sent[str(record.id)] = started
        notifier.close(wait=True)
    delivered = sorted(at - sent[rid] for rid, at in arrivals.items())
    emit_us = sorted(e * 1e6 for e in emits)
    out: dict[str, Any] = {
        "scenario": name,
        "records": records,
        "emit_median_us": round(statistics.median(emit_us), 1),
        "emit_p99_us": round(emit_us[int(0.99 * (len(emit_us) - 1))], 1),
        "delivered": len(arrivals),
        "attempts": len(notifier.attempts),
    }
    if delivered:
        out["delivery_median_ms"] = round(statistics.median(delivered) * 1000, 1)
        out["delivery_max_ms"] = round(delivered[-1] * 1000, 1)
    return out


def run(records: int = 200) -> list[dict[str, Any]]:
    previous = structlog.get_config()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # attempts: not news
    try:
        return [_scenario(name, records) for name in SCENARIOS]
    finally:
        structlog.configure(**previous)


def render(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'receiver':<9} {'records':>7} {'emit median':>12} {'emit p99':>10} "
        f"{'delivered':>9} {'attempts':>8} {'delivery median':>16} {'delivery max':>13}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        median = f"{r['delivery_median_ms']} ms" if "delivery_median_ms" in r else "-"
        worst = f"{r['delivery_max_ms']} ms" if "delivery_max_ms" in r else "-"
        lines.append(
            f"{r['scenario']:<9} {r['records']:>7} {r['emit_median_us']:>9} us "
            f"{r['emit_p99_us']:>7} us {r['delivered']:>9} {r['attempts']:>8} "
            f"{median:>16} {worst:>13}"
        )
    return "\n".join(lines)
