"""The runtime's ``Informer`` port on the official client's ``SharedInformer``.

The client's informer lists, then watches from the list's resourceVersion, relists on
410 Gone and reconnects after errors; its cache holds plain dicts (see ``dict_lister``).
``LeanInformer`` (lean_informer.py) subclasses it: paginated relists that re-announce only
changed objects, and a cache transform that keeps what the controller reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kubernetes.informer.informer import ADDED, DELETED, MODIFIED

from controller.adapters.kube import watch_lines
from controller.adapters.kube.api import KubeApi
from controller.adapters.kube.lean_informer import (
    PAGE_SIZE,
    LeanInformer,
    lean_deployment,
    lean_object,
    lean_release,
)
from controller.runtime.ports import JsonDict

#: What each kind's cache keeps (anything else: ``lean_object``).
_TRANSFORMS = {"Deployment": lean_deployment, "LaneRelease": lean_release}


class KubeInformer:
    def __init__(
        self,
        api: KubeApi,
        kind: str,
        watch_timeout: float,
        resync_seconds: int,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._synced = threading.Event()
        watch_lines.install()  # the client's line splitter is quadratic in a chunk's events
        lister = api.lister(kind, watch_timeout, on_watch=self._synced.set)
        self._informer = LeanInformer(
            lister,
            transform=_TRANSFORMS.get(kind, lean_object),
            page_size=page_size,
            resync_period=resync_seconds,
        )

    def list(self) -> list[JsonDict]:
        items: list[JsonDict] = self._informer.cache.list()
        return items

    def get(self, key: str) -> JsonDict | None:
        obj: JsonDict | None = self._informer.cache.get_by_key(key)
        return obj

    def on_change(self, handler: Callable[[JsonDict], None]) -> None:
        def guarded(obj: Any) -> None:
            if isinstance(obj, dict):
                handler(obj)

        for event in (ADDED, MODIFIED, DELETED):
            self._informer.add_event_handler(event, guarded)

    def start(self) -> None:
        self._informer.start()

    def stop(self) -> None:
        # Not SharedInformer.stop(): it joins the watch thread, which may sit in a read
        # for up to the watch timeout. Signal the loop and close the stream instead; the
        # thread is a daemon and ends on its own. (The client has no public way to do it.)
        self._informer._stop_event.set()
        if self._informer._watch is not None:
            self._informer._watch.stop()

    def has_synced(self) -> bool:
        return self._synced.is_set()

    def is_alive(self) -> bool:
        # The client exposes no liveness: its thread is the only witness.
        thread = self._informer._thread
        return thread is not None and bool(thread.is_alive())
