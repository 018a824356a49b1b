"""``SimCluster``: the simulated Kubernetes cluster as one object to start, use and stop.

    with SimCluster(ready_delay=0.2) as sim:
        sim.write_kubeconfig(path)          # for kubectl / kubernetes.config.load_kube_config
        sim.store.create("configmaps", {...})   # in-process access, same semantics as HTTP
        sim.faults.fail(500, share=0.5, verbs=["list"])
        sim.faults.drop_watches(); sim.faults.compact()

It serves plain HTTP on loopback only and, by default, without authentication: kubectl
does not send bearer tokens over plain HTTP. Pass ``token="auto"`` (or a token) to require
one from clients that do (the official Python client does).

Named users tell clients apart (no authorization: every user may do everything)::

    token = sim.add_user("system:serviceaccount:changelane-system:cl-changelane")
    sim.write_kubeconfig(path, user="system:serviceaccount:...")
    with sim.record_requests() as log:   # every request: user, verb, group, resource, ...
        ...
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.sim.deployments import SimController
from controller.sim.faults import Faults
from controller.sim.http_api import SimServer, serve, shutdown
from controller.sim.kubeconfig import kubeconfig, write_kubeconfig
from controller.sim.request_audit import Authorizer, RequestHook, RequestLog
from controller.sim.resources import default_registry
from controller.sim.schemas import product_crd_types
from controller.sim.store import Store

JsonDict = dict[str, Any]


class SimCluster:
    """A simulated cluster: store, HTTP API, Deployment controller and fault injection.

    Args:
        host: loopback address to bind (anything else is refused).
        port: TCP port; 0 picks a free one (read it back from ``port`` / ``url``).
        ready_delay: seconds before a new pod turns Ready.
        crash_restart_interval: seconds between restarts of a crash-looping container.
        crd_dir: directory of CRD YAML files to serve (default: the chart's generated CRDs).
        history_limit: watch events retained; resuming from anything older answers 410.
        bookmark_interval: seconds of quiet before a watch with bookmarks gets a BOOKMARK.
        token: bearer token the API requires: None (default) for none, "auto" for a random one.
        controllers: run the simulated Deployment/ReplicaSet controllers and kubelet.
        emit_events: let the simulated controllers write Kubernetes Events.
        fault_seed: seed of the fault injector's random draws.
    """

    _AUTO = "auto"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ready_delay: float = 1.0,
        crash_restart_interval: float = 2.0,
        crd_dir: Path | None = None,
        history_limit: int = 10_000,
        bookmark_interval: float = 5.0,
        token: str | None = None,
        controllers: bool = True,
        emit_events: bool = True,
        fault_seed: int = 0,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"host: the simulated cluster serves loopback only, got {host!r}")
        registry = default_registry()
        registry.extend(product_crd_types(crd_dir))
        self.store = Store(registry, history_limit=history_limit)
        self.faults = Faults(
            seed=fault_seed,
            drop_watches_hook=self.store.drop_watches,
            compact_hook=self.store.compact,
        )
        self.token = secrets.token_urlsafe(24) if token == self._AUTO else token
        self.controller: SimController | None = (
            SimController(
                self.store,
                ready_delay=ready_delay,
                crash_restart_interval=crash_restart_interval,
                emit_events=emit_events,
            )
            if controllers
            else None
        )
        self._users: dict[str, str] = {}  # token -> user name
        self._request_hooks: list[RequestHook] = []
        self._authorizer: list[Authorizer] = []
        self._address = (host, port)
        self._bookmark_interval = bookmark_interval
        self._server: SimServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimCluster:
        if self._server is not None:
            return self
        self._server = SimServer(
            self._address,
            self.store,
            self.faults,
            token=self.token,
            bookmark_interval=self._bookmark_interval,
            users=self._users,
            request_hooks=self._request_hooks,
            authorizer=self._authorizer,
        )
        self._thread = serve(self._server)
        if self.controller is not None:
            self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
        if self._server is not None:
            shutdown(self._server)
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulated cluster is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kubeconfig(
        self,
        *,
        namespace: str = "default",
        name: str = "changelane-sim",
        user: str | None = None,
    ) -> JsonDict:
        """A kubeconfig for the cluster; with ``user`` (see :meth:`add_user`), that user's
        token and name (the kubeconfig user name is what ``changelane`` reports as "who")."""
        if user is None:
            return kubeconfig(self.url, token=self.token, name=name, namespace=namespace)
        token = next((t for t, u in self._users.items() if u == user), None)
        if token is None:
            raise KeyError(f"user {user!r}: not added to the simulated cluster (add_user)")
        return kubeconfig(self.url, token=token, name=name, namespace=namespace, user=user)

    def write_kubeconfig(
        self, path: Path | str, *, namespace: str = "default", user: str | None = None
    ) -> Path:
        """Write a kubeconfig (mode 0600) for kubectl and ``load_kube_config``."""
        return write_kubeconfig(path, self.kubeconfig(namespace=namespace, user=user))

    # ------------------------------------------------------------------ identities, audit

    def add_user(self, user: str) -> str:
        """A bearer token that authenticates as ``user`` (its requests are recorded so)."""
        for token, known in self._users.items():
            if known == user:
                return token
        token = secrets.token_urlsafe(24)
        self._users[token] = user
        return token

    def add_request_hook(self, hook: RequestHook) -> Callable[[], None]:
        """Call ``hook`` with every request served from now on; returns its remover."""
        self._request_hooks.append(hook)

        def remove() -> None:
            if hook in self._request_hooks:
                self._request_hooks.remove(hook)

        return remove

    def set_authorizer(self, authorizer: Authorizer | None) -> None:
        """Decide every request from now on (False: 403 Forbidden); None allows all."""
        self._authorizer[:] = [authorizer] if authorizer is not None else []

    @contextmanager
    def record_requests(self) -> Iterator[RequestLog]:
        """Record every request served inside the block (off otherwise: no cost)."""
        log = RequestLog()
        remove = self.add_request_hook(log)
        try:
            yield log
        finally:
            remove()

    # ------------------------------------------------------------------ conveniences

    def wait_for(
        self, predicate: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.02
    ) -> bool:
        """Poll ``predicate`` until it is true (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    def deployment_ready(self, namespace: str, name: str) -> bool:
        """True when the Deployment's status says it has fully rolled out its current spec."""
        obj = self.store.get_obj("deployments", namespace, name)
        status = obj.get("status") or {}
        want = obj["spec"].get("replicas", 1)
        return bool(
            status.get("observedGeneration") == obj["metadata"].get("generation")
            and status.get("updatedReplicas", 0) == want
            and status.get("readyReplicas", 0) == want
            and status.get("replicas", 0) == want
        )
