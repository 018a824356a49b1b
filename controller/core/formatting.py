"""How times and tables are written for people and for the API, defined once."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

#: Column separator of every text table.
GAP = "  "
#: How the API server writes timestamps (creationTimestamp, lastUpdateTime, ...).
API_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso_z(when: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` (as JSON, audit records and status fields carry it)."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def api_time(when: datetime) -> str:
    """The API server's own timestamp form: whole seconds, UTC, ``Z``."""
    return when.astimezone(UTC).strftime(API_TIME_FORMAT)


def parse_api_time(stamp: object) -> datetime | None:
    """An API-server timestamp (``api_time``'s form) back as a datetime; None when it is
    missing or not in that form."""
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.strptime(stamp, API_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def human_time(when: datetime | None) -> str:
    """A time in a table: UTC to the second; ``-`` when there is none."""
    return "-" if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class Columns:
    """Left-aligned columns sized from some rows; the last column is free width (a reason,
    a message), so a long one never pushes the others apart."""

    def __init__(self, headers: Sequence[str], sizing_rows: Iterable[Sequence[str]]) -> None:
        rows = list(sizing_rows)
        self.widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
        self.headers = tuple(headers)

    def line(self, cells: Sequence[str]) -> str:
        fixed = GAP.join(c.ljust(w) for c, w in zip(cells[:-1], self.widths, strict=False))
        return f"{fixed}{GAP}{cells[-1]}".rstrip()

    def rule(self) -> str:
        """A line of dashes under the headers."""
        return GAP.join("-" * w for w in self.widths)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Iterator[str]:
    """The headers, then one line per row."""
    columns = Columns(headers, rows)
    yield columns.line(headers)
    for row in rows:
        yield columns.line(row)
