"""A real HTTP receiver on loopback that records what it is sent (or misbehaves on purpose)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.monotonic()


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 202
    delay: float = 0.0
    #: Answer this many requests with ``fail_status`` before answering ``status``.
    fail_first: int = 0
    fail_status: int = 503
    requests: int = 0

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received) < count:
            time.sleep(0.02)
        return list(self.received)


@contextmanager
def receiver(**options: Any) -> Iterator[Receiver]:
    state: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            state.requests += 1
            if state.delay:
                time.sleep(state.delay)
            if state.requests <= state.fail_first:
                self.send_response(state.fail_status)
                self.end_headers()
                return
            state.received.append(
                Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw),
                    time.monotonic(),
                )
            )
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Receiver(url=f"http://127.0.0.1:{server.server_port}/hook/s3cr3t-token", **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A loopback URL nobody listens on (the receiver that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook/s3cr3t-token"
