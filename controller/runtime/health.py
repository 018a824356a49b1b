"""One HTTP port for Prometheus and the kubelet: ``/metrics``, ``/healthz``, ``/readyz``.

``/healthz`` (liveness) answers 200 while the process can still do its job (informer and
worker threads alive); ``/readyz`` (readiness) answers 200 once every informer has listed
its objects. Leadership is not required for either: a standby is healthy and ready.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from controller.runtime.metrics import ControllerMetrics, MetricsServer

StartResponse = Callable[..., Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not news."""


WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def probes_app(
    metrics: ControllerMetrics,
    alive: Callable[[], bool],
    ready: Callable[[], bool],
    fallback: WsgiApp | None = None,
) -> WsgiApp:
    """``fallback`` (the dashboard) answers every path but the probes and ``/metrics``."""
    exposition = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok = (alive if path == "/healthz" else ready)()
            body = b"ok\n" if ok else b"not ok\n"
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if fallback is not None and path != "/metrics":
            return fallback(environ, start_response)
        result: Iterable[bytes] = exposition(environ, start_response)
        return result

    return app


class PortInUseError(Exception):
    """The port cannot be bound; the message is one line for the user."""


def port_problem(addr: str, port: int, err: OSError) -> str:
    if err.errno == errno.EADDRINUSE:
        return f"port {port} on {addr} is already in use (choose another with --metrics-port)"
    return f"cannot listen on {addr}:{port}: {err.strerror or err}"


def serve_probes(
    metrics: ControllerMetrics,
    alive: Callable[[], bool],
    ready: Callable[[], bool],
    port: int = 0,
    addr: str = "127.0.0.1",
    fallback: WsgiApp | None = None,
) -> MetricsServer:
    """Serve metrics and probes from a daemon thread (``port=0``: any free port)."""
    try:
        server = make_server(
            addr,
            port,
            probes_app(metrics, alive, ready, fallback),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
    except OSError as err:
        raise PortInUseError(port_problem(addr, port, err)) from None
    thread = threading.Thread(target=server.serve_forever, name="probes", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
