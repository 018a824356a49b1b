"""The runtime's ``Informer`` port on the official client's ``SharedInformer``.

The client's informer lists, then watches from the list's resourceVersion, relists on
410 Gone and reconnects after errors; its cache holds plain dicts (see ``dict_lister``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kubernetes.informer import SharedInformer
from kubernetes.informer.informer import ADDED, DELETED, MODIFIED

from controller.adapters.kube.api import KubeApi
from controller.runtime.ports import JsonDict


class KubeInformer:
    def __init__(self, api: KubeApi, kind: str, watch_timeout: float, resync_seconds: int) -> None:
        self._synced = threading.Event()
        lister = api.lister(kind, watch_timeout, on_watch=self._synced.set)
        self._informer = SharedInformer(lister, resync_period=resync_seconds)

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
