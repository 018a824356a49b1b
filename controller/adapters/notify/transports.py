"""How one notification reaches one destination: a CloudEvents webhook or apprise.

URLs carry tokens, so no error message here ever contains one: errors name the
destination and what went wrong ("connection refused", "HTTP 503 Service Unavailable").
A transient failure (network, timeout, 5xx, 408, 429) is retried by the caller; a
permanent one (malformed URL, missing secret, other 4xx) is not.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import requests
from cloudevents.core.bindings.http import to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from controller.core.models.notifications import NotificationDestination
from controller.core.notify import SEVERITY, Notification

CLOUDEVENT_SOURCE = "/changelane/controller"
RETRYABLE_STATUS = frozenset({408, 425, 429})


class DeliveryError(Exception):
    """A delivery failed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Transport(Protocol):
    def send(self, notification: Notification) -> None: ...


def redact(url: str) -> str:
    """What of a URL may be shown: its scheme and host, never path, query or userinfo."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    host = parts.hostname or "?"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme or '?'}://{host}{port}/..."


def resolve_url(destination: NotificationDestination, secret_dir: Path | None) -> str:
    if destination.url is not None:
        return destination.url
    key = destination.secret_key or ""
    if secret_dir is None:
        raise DeliveryError(
            f"destination {destination.name}: secretKey {key!r} given but no notification "
            "Secret is mounted (chart: notifications.existingSecret; "
            "run: --notification-secrets DIR)",
            transient=False,
        )
    path = secret_dir / key
    try:
        url = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise DeliveryError(
            f"destination {destination.name}: key {key!r} not found in the notification "
            f"Secret mounted at {secret_dir} ({err.strerror})",
            transient=False,
        ) from None
    if not url:
        raise DeliveryError(
            f"destination {destination.name}: key {key!r} of the notification Secret is empty",
            transient=False,
        )
    return url


def _network_problem(err: requests.RequestException) -> str:
    text = str(err).lower()
    if isinstance(err, requests.Timeout):
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "host name does not resolve"
    if isinstance(err, requests.ConnectionError):
        return "connection failed"
    return type(err).__name__


class WebhookTransport:
    """POSTs the notification as a CloudEvents 1.0 event in structured JSON mode."""

    def __init__(self, name: str, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryError(
                f"destination {name}: webhook URL must be http(s)://host/..., got {redact(url)}",
                transient=False,
            )
        self.name, self.url, self.timeout = name, url, timeout
        self.where = redact(url)

    def send(self, notification: Notification) -> None:
        event = CloudEvent(
            attributes={
                "id": notification.id,
                "source": CLOUDEVENT_SOURCE,
                "type": notification.cloudevent_type,
                "subject": notification.title,
                "datacontenttype": "application/json",
            },
            data={**notification.data, "title": notification.title, "text": notification.body},
        )
        message = to_structured(event, JSONFormat())
        try:
            response = requests.post(
                self.url, data=message.body, headers=message.headers, timeout=self.timeout
            )
        except requests.RequestException as err:
            raise DeliveryError(
                f"destination {self.name} ({self.where}): {_network_problem(err)}",
                transient=True,
            ) from None
        if response.status_code >= 300:
            code = response.status_code
            raise DeliveryError(
                f"destination {self.name} ({self.where}): HTTP {code} {response.reason}",
                transient=code >= 500 or code in RETRYABLE_STATUS,
            )


class AppriseTransport:
    """Chat services (Slack, Teams, Discord, ...) through apprise's URL scheme."""

    def __init__(self, name: str, url: str, timeout: float = 5.0) -> None:
        import apprise  # heavy import: only when a chat destination is configured

        self.name = name
        self.where = redact(url)
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise DeliveryError(
                f"destination {name}: not a URL apprise understands ({self.where}); see "
                "https://github.com/caronc/apprise/wiki for the scheme of each service",
                transient=False,
            )
        self.timeout = timeout

    def send(self, notification: Notification) -> None:
        import apprise

        notify_type = {
            "success": apprise.NotifyType.SUCCESS,
            "warning": apprise.NotifyType.WARNING,
            "failure": apprise.NotifyType.FAILURE,
        }.get(SEVERITY[notification.event], apprise.NotifyType.INFO)
        captured = _ThreadLog()
        logger = logging.getLogger("apprise")
        logger.addHandler(captured)
        try:
            delivered = self._apprise.notify(
                title=notification.title, body=notification.body, notify_type=notify_type
            )
        finally:
            logger.removeHandler(captured)
        if not delivered:
            detail = _scrub(captured.lines[-1] if captured.lines else "the service refused it")
            raise DeliveryError(f"destination {self.name} ({self.where}): {detail}", transient=True)


class _ThreadLog(logging.Handler):
    """apprise says why a delivery failed only in its log: collect this thread's lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


def _scrub(text: str) -> str:
    """apprise's log lines may quote the URL: keep only the words before any URL."""
    words = [w for w in text.split() if "://" not in w and "?" not in w]
    return " ".join(words)[:300]


@dataclass
class TransportFactory:
    secret_dir: Path | None = None
    timeout: float = 5.0

    def build(self, destination: NotificationDestination) -> Transport:
        url = resolve_url(destination, self.secret_dir)
        if destination.kind == "webhook":
            return WebhookTransport(destination.name, url, self.timeout)
        return AppriseTransport(destination.name, url, self.timeout)
