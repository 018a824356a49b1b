"""The simulated cluster in a process of its own, for the controller benches.

With the cluster inside the bench process, one interpreter (one GIL) served the API, the
watches of every controller, the Deployment controller and kubelet, and the bench's own
polling: with three controllers that process, not the controllers, set the pace. Here
``SimCluster`` runs in a spawned process; the controllers reach it over its HTTP API as
before, and the bench drives it over a pipe with a few named operations. The operations
run inside the cluster's process on its store (reading stored bytes, as the in-process
bench did), so what the bench measures means the same, and polling 10,000 Deployments
costs no HTTP list of 40 MiB.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.core.labels import TOTAL_REPLICAS
from controller.sim.kubeconfig import write_kubeconfig

JsonDict = dict[str, Any]

_LAST_ANALYSIS = re.compile(rb'"lastAnalysisAt":\s*"([^"]+)"')
_START_TIMEOUT_S = 60.0


# ---------------------------------------------------------------- operations (in the cluster)


def _create(sim: Any, ref: str, docs: list[JsonDict], namespace: str | None) -> int:
    """Create every doc; an existing one is left as it is (a bench re-creating a namespace)."""
    from controller.sim.errors import ApiError

    created = 0
    for doc in docs:
        try:
            sim.store.create(ref, doc, namespace=namespace)
            created += 1
        except ApiError as exc:
            if exc.code != 409:
                raise
    return created


def _count_primaries(sim: Any, namespace: str) -> int:
    items = sim.store.list("deployments", namespace).items
    return sum(1 for s in items if s.name.endswith("-primary"))


def _count_handed_over(sim: Any, namespace: str) -> int:
    """Originals carrying the total-replicas annotation, which the controller sets as it
    scales them to zero; read from the stored bytes without decoding them."""
    mark = f'"{TOTAL_REPLICAS}"'.encode()
    items = sim.store.list("deployments", namespace).items
    return sum(1 for s in items if not s.name.endswith("-primary") and mark in s.raw)


def _analysis_times(sim: Any, namespace: str) -> dict[str, float]:
    """Each LaneRelease's ``status.lastAnalysisAt`` (epoch seconds), from the stored bytes."""
    out: dict[str, float] = {}
    for stored in sim.store.list("lanereleases", namespace).items:
        match = _LAST_ANALYSIS.search(stored.raw)
        if match:
            out[stored.name] = datetime.fromisoformat(match.group(1).decode()).timestamp()
    return out


def _release_names(sim: Any, namespace: str) -> list[str]:
    return [s.name for s in sim.store.list("lanereleases", namespace).items]


def _release_phases(sim: Any, namespace: str) -> dict[str, int]:
    phases: Counter[str] = Counter()
    for stored in sim.store.list("lanereleases", namespace).items:
        phases[str((stored.obj().get("status") or {}).get("phase"))] += 1
    return dict(phases)


def _new_templates(sim: Any, namespace: str, names: list[str], image: str, change: str) -> None:
    """A pipeline's new pod template on each Deployment, with its fresh provenance."""
    for name in names:
        dep = sim.store.get_obj("deployments", namespace, name)
        template = dep["spec"]["template"]
        template["spec"]["containers"][0]["image"] = image
        template["metadata"]["annotations"]["changelane.dev/change"] = change
        template["metadata"]["annotations"]["changelane.dev/images"] = image
        sim.store.update("deployments", dep, namespace=namespace, name=name)


def _fill_histories(sim: Any, namespace: str, entries: int) -> int:
    """Give every LaneRelease a measurement history of ``entries`` (as an hour or more into
    its step), made of older copies of the measurements it has (times moved back one
    per copy, so no two are the same object once decoded). Returns how many were filled;
    a release the controller writes meanwhile is read again."""
    from datetime import timedelta

    from controller.sim.errors import ApiError

    filled = 0
    for stored in list(sim.store.list("lanereleases", namespace).items):
        for _ in range(10):
            obj = sim.store.get_obj("lanereleases", namespace, stored.name)
            status = obj.get("status") or {}
            have = list(status.get("measurements") or [])
            if not have or len(have) >= entries:
                break
            older: list[JsonDict] = []
            for back in range(entries - len(have), 0, -1):
                copy = dict(have[back % len(have)])
                at = datetime.fromisoformat(str(copy["time"]).replace("Z", "+00:00"))
                copy["time"] = (at - timedelta(seconds=back)).isoformat().replace("+00:00", "Z")
                older.append(copy)
            status["measurements"] = older + have
            try:
                sim.store.update(
                    "lanereleases", obj, namespace=namespace, name=stored.name, subresource="status"
                )
                filled += 1
                break
            except ApiError as exc:
                if exc.code != 409:
                    raise
    return filled


def _kubeconfig(sim: Any) -> JsonDict:
    return dict(sim.kubeconfig())


def _url(sim: Any) -> str:
    return str(sim.url)


OPERATIONS: dict[str, Callable[..., Any]] = {
    "create": _create,
    "count_primaries": _count_primaries,
    "count_handed_over": _count_handed_over,
    "analysis_times": _analysis_times,
    "release_names": _release_names,
    "release_phases": _release_phases,
    "new_templates": _new_templates,
    "fill_histories": _fill_histories,
    "kubeconfig": _kubeconfig,
    "url": _url,
}


def _serve(conn: Connection, options: JsonDict) -> None:
    """The cluster process: start the cluster, then answer operations until told to stop."""
    from controller.sim.cluster import SimCluster

    with SimCluster(**options) as sim:
        conn.send(("ok", None))
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return  # the bench is gone
            if request is None:
                conn.send(("ok", None))
                return
            name, args = request
            try:
                conn.send(("ok", OPERATIONS[name](sim, *args)))
            except Exception as exc:
                conn.send(("error", f"{name}: {type(exc).__name__}: {exc}"))


# ---------------------------------------------------------------- the handle (in the bench)


class SimClusterError(RuntimeError):
    """An operation failed inside the cluster's process, or the process is gone."""


class SimProcess:
    """``SimCluster(**options)`` in a spawned process, driven over a pipe.

    with SimProcess(ready_delay=0.5) as sim:
        sim.create("namespaces", [{"metadata": {"name": "bench"}}])
        sim.write_kubeconfig(path)
        sim.call("count_primaries", "bench")
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(child, options), name="sim-cluster", daemon=True
        )
        self._child = child
        self._lock = threading.Lock()
        self.url = ""

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self) -> SimProcess:
        self._process.start()
        self._child.close()
        if not self._conn.poll(_START_TIMEOUT_S):
            self.stop()
            raise SimClusterError("the simulated cluster's process did not start")
        self._reply()
        self.url = str(self.call("url"))
        return self

    def call(self, name: str, *args: Any) -> Any:
        """Run operation ``name`` (see ``OPERATIONS``) in the cluster's process."""
        if name not in OPERATIONS:
            raise ValueError(f"operation {name!r}: not one of {sorted(OPERATIONS)}")
        with self._lock:
            try:
                self._conn.send((name, args))
            except (OSError, ValueError) as exc:
                raise SimClusterError(f"{name}: the cluster's process is gone ({exc})") from exc
            return self._reply()

    def _reply(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            code = self._process.exitcode
            raise SimClusterError(f"the cluster's process is gone (exit code {code})") from exc
        if status != "ok":
            raise SimClusterError(str(value))
        return value

    def create(self, ref: str, docs: list[JsonDict], namespace: str | None = None) -> int:
        return int(self.call("create", ref, docs, namespace))

    def write_kubeconfig(self, path: Path) -> Path:
        return write_kubeconfig(path, self.call("kubeconfig"))

    def stop(self) -> None:
        if self._process.is_alive():
            with self._lock:
                try:
                    self._conn.send(None)
                    if self._conn.poll(10):
                        self._conn.recv()
                except (OSError, EOFError, ValueError):
                    pass
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)
        self._conn.close()

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
