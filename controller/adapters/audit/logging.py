"""structlog set-up: JSON lines on stdout, ISO UTC timestamps, secrets redacted.

One decision is one event named ``decision`` whose fields are the :class:`AuditRecord`
fields, so log pipelines can key on the same names as the audit log and ``changelane
audit``. The redaction processor runs last before rendering, so nothing bound anywhere
(by the runtime, an adapter or an exception's locals) reaches the output with a secret.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"
# Keys whose values are secrets wherever they appear (nested dicts and lists too).
SECRET_KEY = re.compile(
    r"(token|passw(or)?d|authorization|secret|api[-_]?key|cookie|credential|private[-_]?key"
    r"|bearer|session[-_]?id)",
    re.IGNORECASE,
)
# Values that are credentials whatever their key: an HTTP auth header value, a URL's userinfo.
SECRET_VALUE = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", re.IGNORECASE)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        value = SECRET_VALUE.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
        return URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)
    if isinstance(value, MutableMapping):
        return {k: REDACTED if _is_secret_key(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and SECRET_KEY.search(key) is not None


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace secret-looking keys' values and credentials in strings."""
    for key in list(event_dict):
        if key != "event" and _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.format_exc_info,
        redact_secrets,
        structlog.processors.JSONRenderer(sort_keys=False),
    ]


def build_logger(
    stream: TextIO | None = None, **initial: Any
) -> structlog.typing.FilteringBoundLogger:
    """A JSON logger writing to ``stream`` (stdout by default) without touching the global
    structlog configuration (tests, embedded uses)."""
    logger: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(stream or sys.stdout),
        processors=processors(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    return logger.bind(**initial) if initial else logger


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Process-wide set-up for the controller: every ``structlog.get_logger()`` logs JSON."""
    structlog.configure(
        processors=processors(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,
    )
