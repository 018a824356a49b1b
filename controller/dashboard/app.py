"""The dashboard as a WSGI app over the Kubernetes API: GET only, never a traceback.

Reads lanes, LaneReleases and their Events with the caller's credentials (the ``viewer``
role is enough); writes nothing. The same app is mounted on the controller's metrics port
and served alone by ``changelane dashboard``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from pydantic import ValidationError

from controller.adapters.audit.cluster import release_records
from controller.adapters.kube.api import KubeApi, NotFoundError
from controller.core.models import ChangeLane, LaneRelease
from controller.dashboard import pages
from controller.dashboard.pages import HistoryFilter, KillSwitchState, Page

log = structlog.get_logger("changelane.dashboard")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class DashboardData:
    """What the pages need, read from the API on each request (a dashboard is looked at
    now and then; it keeps no cache to go stale)."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def lanes(self) -> list[ChangeLane]:
        return _valid(ChangeLane, self.api.list_lanes())

    def releases(self) -> list[LaneRelease]:
        return _valid(LaneRelease, self.api.list_releases())

    def release(self, namespace: str, name: str) -> LaneRelease | None:
        try:
            return LaneRelease.model_validate(self.api.get_release(namespace, name))
        except (NotFoundError, ValidationError):
            return None

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The release's Events; none when they cannot be read (expired, or no access):
        the page then shows what the LaneRelease's status holds."""
        try:
            found = self.api.list_events("LaneRelease", namespace)
        except Exception as err:
            log.warning("dashboard cannot read events", namespace=namespace, error=str(err)[:200])
            return []
        return [ev for ev in found if (ev.get("involvedObject") or {}).get("name") == name]


def _valid(model: Any, raws: list[dict[str, Any]]) -> list[Any]:
    out = []
    for raw in raws:
        try:
            out.append(model.model_validate(raw))
        except ValidationError:
            continue  # `changelane lanes validate` and the controller report it
    return out


def _since(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def route(data: DashboardData, path: str, query: str, kill_switch: KillSwitchState | None) -> Page:
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if parts in ([], ["lanes"]):
        return pages.lanes_page(data.lanes(), data.releases(), kill_switch)
    if parts == ["releases"]:
        return pages.in_flight_page(data.releases(), data.lanes())
    if len(parts) == 3 and parts[0] == "releases":
        ns, name = parts[1], parts[2]
        rel = data.release(ns, name)
        if rel is None:
            return pages.not_found(f"release {ns}/{name}")
        lane = next((x for x in data.lanes() if x.name == rel.spec.lane), None)
        return pages.release_page(rel, lane, release_records(rel, data.events(ns, name)))
    if parts == ["history"]:
        q = {k: v[0] for k, v in parse_qs(query).items()}
        flt = HistoryFilter(
            lane=q.get("lane", ""),
            agent=q.get("agent", ""),
            outcome=q.get("outcome", "") if q.get("outcome") in pages.OUTCOMES else "",
            since_hours=_since(q.get("since", "")),
        )
        return pages.history_page(data.releases(), flt, datetime.now(UTC))
    return pages.not_found(f"page {path}")


def dashboard_app(api: KubeApi, kill_switch: KillSwitchState | None = None) -> WsgiApp:
    data = DashboardData(api)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            page = pages.layout(
                "Read-only", "<p>This dashboard only reads.</p>", "405 Method Not Allowed"
            )
        else:
            try:
                page = route(
                    data,
                    environ.get("PATH_INFO", "/"),
                    environ.get("QUERY_STRING", ""),
                    kill_switch,
                )
            except Exception as err:  # a page must never show a traceback
                log.exception("dashboard page failed", path=environ.get("PATH_INFO"))
                page = pages.layout(
                    "Error",
                    f"<p>The page could not be built: {type(err).__name__}. "
                    "See the controller's log.</p>",
                    "500 Internal Server Error",
                )
        body = page.html.encode("utf-8")
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            (
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
        ]
        start_response(page.status, headers)
        return [] if method == "HEAD" else [body]

    return app


def controller_dashboard(controller: Any, api: KubeApi | None = None) -> WsgiApp:
    """The dashboard a running controller serves on its metrics port; it knows each lane's
    kill-switch state as the controller last evaluated it. ``api`` reads the cluster
    (default: the controller's own client, when it is the Kubernetes one)."""
    registry = controller.metrics.registry

    def kill_switch(lane: ChangeLane) -> str:
        value = registry.get_sample_value("changelane_lane_autonomy_enabled", {"lane": lane.name})
        if value is None:
            return "not evaluated yet"
        return "on" if value >= 1 else "OFF"

    return dashboard_app(api if api is not None else controller.api, kill_switch)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(WSGIServer):
    daemon_threads = True


def serve(app: WsgiApp, address: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``app`` from a daemon thread; raises ``OSError`` when the port is taken."""
    from socketserver import ThreadingMixIn

    class Threading(ThreadingMixIn, _Server):
        pass

    server = make_server(address, port, app, server_class=Threading, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    return server, thread
