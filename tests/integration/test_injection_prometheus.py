"""The injection corpus of ``changelane bench fuzz`` against a real Prometheus.

A scrape target exposes one ``probe`` series per hostile value (and decoys such as
``docsXsite``). Each template is rendered with each hostile value and sent to Prometheus;
the series it returns must be exactly those whose ``value`` label the template meant
(equal, not equal, matching the value as a literal regex or as a literal prefix). Any other
answer is a selector changed by a hostile value.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from controller.adapters.metrics.prometheus_process import PrometheusProcess, ScrapeTarget
from controller.bench.fuzz import INJECTION_CORPUS, INJECTION_TEMPLATES
from controller.core.promql import escape_regex, render

pytestmark = pytest.mark.prometheus

DECOYS = ("docsXsite", "web", "webx", "api", "xweb", "a", "aaa", "d", "webweb")


def _exposable(value: str) -> bool:
    # An empty label value is an absent label; NUL is refused by the exposition parser.
    return value != "" and "\x00" not in value


SERIES = sorted({v for v in (*INJECTION_CORPUS, *DECOYS) if _exposable(v)})


def _exposition() -> bytes:
    lines = ["# TYPE probe gauge"]
    for value in SERIES:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'probe{{namespace="docs",value="{escaped}"}} 1')
    return ("\n".join(lines) + "\n").encode()


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = _exposition()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def prom(prometheus_bin: str) -> Iterator[PrometheusProcess]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = ScrapeTarget(f"127.0.0.1:{server.server_address[1]}", job="probe")
    try:
        with PrometheusProcess([target], binary=prometheus_bin) as p:
            p.wait_for_samples("count(probe)", minimum=len(SERIES) - 1, timeout_s=30)
            yield p
    finally:
        server.shutdown()


def _meant(template: str, hostile: str) -> set[str]:
    """The ``value`` labels the template means for ``hostile``, Prometheus semantics
    (an absent label matches as the empty string; `.` does not match a newline, as in RE2)."""
    literal = escape_regex(hostile)
    if 'value="' in template:
        return {v for v in SERIES if v == hostile}
    if 'value!="' in template:
        return {v for v in SERIES if v != hostile}
    if "}}.*" in template:
        return {v for v in SERIES if re.fullmatch(literal + ".*", v)}
    if 'value=~"' in template:
        return {v for v in SERIES if re.fullmatch(literal, v)}
    return {v for v in SERIES if not re.fullmatch(literal, v)}


def _answer(prom: PrometheusProcess, query: str) -> set[str]:
    body = requests.get(f"{prom.url}/api/v1/query", params={"query": query}, timeout=5).json()
    assert body["status"] == "success", (query, body)
    return {r["metric"].get("value", "") for r in body["data"]["result"]}


def test_no_hostile_value_changes_a_selector(prom: PrometheusProcess) -> None:
    changed = []
    corpus = [v for v in INJECTION_CORPUS if "\x00" not in v]
    for template in INJECTION_TEMPLATES:
        for hostile in corpus:
            query = render(template, {"workload": hostile})
            got, meant = _answer(prom, query), _meant(template, hostile)
            if got != meant:
                changed.append((template, hostile, sorted(got ^ meant)[:5]))
    assert len(corpus) * len(INJECTION_TEMPLATES) >= 100
    assert changed == [], f"{len(changed)} selector(s) changed: {changed[:5]}"


def test_the_corpus_would_change_selectors_if_values_were_not_escaped(
    prom: PrometheusProcess,
) -> None:
    """The contrast that shows the test above can fail."""
    naive = 'count by (value) (probe{namespace="docs", value=~"docs.site"})'
    assert _answer(prom, naive) == {"docs.site", "docsXsite"}
    hostile = 'web"}) or vector(42) #'
    injected = 'count by (value) (probe{namespace="docs", value="' + hostile + '"})'
    assert "" in _answer(prom, injected)  # vector(42) has no value label: the query changed
