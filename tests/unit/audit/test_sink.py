from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.adapters.audit.log import verify
from controller.adapters.audit.logging import REDACTED, build_logger
from controller.adapters.audit.sink import (
    AuditSink,
    AuditSinkError,
    FanOutAuditSink,
    StructlogAuditSink,
    build_audit_sink,
)
from controller.core.audit import AuditProvenance, AuditRecord, Decision, Evidence

RECORD = AuditRecord(
    time=datetime(2025, 1, 1, 12, tzinfo=UTC),
    lane="docs-site",
    namespace="docs",
    workload="docs-web",
    release="docs-web-1",
    decision=Decision.ROLLED_BACK,
    reason="CheckFailed",
    message="error-rate 0.09 > threshold 0.02 (baseline 0.004, msprt p=0.0004)",
    provenance=AuditProvenance(agent="claude-code", change="https://git.example.com/pr/1"),
    evidence=[Evidence(check="error-rate", verdict="Fail", canary=0.09, threshold=0.02)],
)


def _events(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_decision_is_one_json_event_with_the_record_fields() -> None:
    out = io.StringIO()
    StructlogAuditSink(build_logger(out)).emit(RECORD)
    (event,) = _events(out)
    assert event["event"] == "decision" and event["level"] == "info"
    assert datetime.fromisoformat(str(event["timestamp"])).tzinfo is not None
    for name, value in RECORD.as_log_fields().items():
        assert event[name] == value, name


def test_secrets_are_redacted_by_key_and_by_value() -> None:
    out = io.StringIO()
    build_logger(out).info(
        "calling",
        token="abc",
        headers={"Authorization": "Bearer xyz", "accept": "json"},
        DB_PASSWORD="hunter2",
        url="https://user:pw@prom.example.com/api",
        note="sent Bearer eyJhbGciOi.secret",
        items=[{"client_secret": "s"}],
    )
    (event,) = _events(out)
    text = json.dumps(event)
    for secret in ("abc", "xyz", "hunter2", "pw@", "eyJhbGciOi", '"s"'):
        assert secret not in text, secret
    assert event["token"] == REDACTED and event["headers"] == {  # type: ignore[comparison-overlap]
        "Authorization": REDACTED,
        "accept": "json",
    }
    assert event["url"] == f"https://{REDACTED}@prom.example.com/api"


class _Collect:
    def __init__(self) -> None:
        self.seen: list[AuditRecord] = []

    def emit(self, record: AuditRecord) -> None:
        self.seen.append(record)


class _Broken:
    def emit(self, record: AuditRecord) -> None:
        raise RuntimeError("events API down")


def test_fan_out_reaches_every_sink_even_when_one_fails(tmp_path: Path) -> None:
    out = io.StringIO()
    collect = _Collect()
    assert isinstance(collect, AuditSink)
    sink, log = build_audit_sink(
        logger=build_logger(out), log_path=tmp_path / "a.jsonl", extra=[_Broken(), collect]
    )
    assert log is not None
    sink.emit(RECORD)  # an optional sink failing is logged, not raised
    log.close()
    assert collect.seen == [RECORD]
    assert verify(tmp_path / "a.jsonl").records == 1
    events = [e["event"] for e in _events(out)]
    assert events == ["decision", "audit_sink_failed"]


def test_a_failing_required_sink_raises_after_the_others() -> None:
    out, collect = io.StringIO(), _Collect()
    broken = _Broken()
    sink = FanOutAuditSink([broken, collect], required=[broken], logger=build_logger(out))
    with pytest.raises(AuditSinkError, match="events API down"):
        sink.emit(RECORD)
    assert collect.seen == [RECORD]
