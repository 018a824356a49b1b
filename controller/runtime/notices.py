"""Telling people: Kubernetes Events, and warnings logged once per distinct cause (a lane
that stays invalid must not fill the log on every resync)."""

from __future__ import annotations

from typing import Any

import structlog

from controller.runtime.ports import Cluster, JsonDict

log = structlog.get_logger("changelane.reconciler")


class Notices:
    def __init__(self, api: Cluster) -> None:
        self.api = api
        self._warned: set[tuple[str, str]] = set()

    def warned(self, key: tuple[str, str]) -> bool:
        return key in self._warned

    def warn_once(self, key: tuple[str, str], message: str, **fields: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, **fields)

    def event(
        self,
        involved: JsonDict,
        reason: str,
        message: str,
        kind: str = "Normal",
        annotations: dict[str, str] | None = None,
    ) -> None:
        """Best effort: an Event that cannot be written never stops a reconcile."""
        try:
            self.api.emit_event(involved, reason, message, kind, annotations=annotations)
        except Exception:
            log.warning("could not emit event", reason=reason)
