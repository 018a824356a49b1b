"""The Prometheus adapter's failure handling, against a scripted HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controller.adapters.metrics import PrometheusMetrics
from controller.core.analysis import ReleaseParams, ResultKind
from controller.core.models import AnalysisCheck


class Script:
    """Answers queued (status, body) pairs in order; the last one repeats."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any]] = []
        self.requests = 0
        self.delay = 0.0


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.requests += 1
            if script.delay:
                threading.Event().wait(script.delay)
            status, body = script.answers[min(script.requests, len(script.answers)) - 1]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", script
    httpd.shutdown()
    httpd.server_close()


def metrics(url: str, **kw: Any) -> PrometheusMetrics:
    return PrometheusMetrics(url, sleep=lambda _s: None, **{"attempts": 3, **kw})


def test_5xx_is_retried_then_succeeds(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, {"status": "error", "error": "busy"}), (200, vector("42"))]
    result = metrics(url).query("up")
    assert result.kind is ResultKind.OK and result.value == 42.0
    assert script.requests == 2


def test_retries_are_bounded(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {"status": "error", "error": "boom"})]
    result = metrics(url).query("up")
    assert result.kind is ResultKind.ERROR and "failed 3 attempts" in result.detail
    assert script.requests == 3


def test_4xx_is_not_retried_and_carries_prometheus_message(server: tuple[str, Script]) -> None:
    url, script = server
    body = {"status": "error", "errorType": "bad_data", "error": '1:6: parse error: unexpected "}"'}
    script.answers = [(400, body)]
    result = metrics(url).query("up{")
    assert result.kind is ResultKind.ERROR
    assert (
        result.detail
        == 'Prometheus rejected the query (HTTP 400): 1:6: parse error: unexpected "}"'
    )
    assert script.requests == 1


def test_timeout_is_enforced_and_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, vector("1"))]
    script.delay = 1.0
    result = metrics(url, timeout_s=0.2, attempts=2).query("up")
    assert result.kind is ResultKind.ERROR and "ReadTimeout" in result.detail
    assert script.requests == 2


@pytest.mark.parametrize(
    ("body", "kind", "value", "detail"),
    [
        (vector(), ResultKind.NO_DATA, None, "empty result"),
        (vector("NaN"), ResultKind.NO_DATA, None, "NaN"),
        (vector("+Inf"), ResultKind.OK, float("inf"), ""),
        (vector("1", "2"), ResultKind.ERROR, None, "returned 2 series; aggregate it"),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [0, "7"]}},
            ResultKind.OK,
            7.0,
            "",
        ),
        (
            {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[0, "1"]]}]},
            },
            ResultKind.ERROR,
            None,
            "range vector",
        ),
    ],
)
def test_results_are_interpreted_explicitly(
    server: tuple[str, Script], body: Any, kind: ResultKind, value: float | None, detail: str
) -> None:
    url, script = server
    script.answers = [(200, body)]
    result = metrics(url).query("q")
    assert result.kind is kind and result.value == value and detail in result.detail


def test_connection_refused_stops_the_fetch_early_and_names_lane_and_check() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    check = AnalysisCheck.model_validate(
        {
            "name": "error-rate",
            "kind": "sequential",
            "errorsQuery": 'e{app="{{ workload }}"}',
            "totalQuery": 't{app="{{ workload }}"}',
        }
    )
    calls: list[float] = []
    m = PrometheusMetrics(f"http://127.0.0.1:{port}", attempts=3, sleep=calls.append)
    sample = m.fetch(check, ReleaseParams(lane="docs", namespace="docs", workload="web"))
    assert sample.error is not None
    assert sample.error.startswith("lane docs, check error-rate: Prometheus at")
    assert len(calls) == 2  # three attempts for the first query, none for the other three
    assert all(0 <= c <= 2.0 for c in calls)
    assert all(r.kind is ResultKind.ERROR for r in sample.results.values())
