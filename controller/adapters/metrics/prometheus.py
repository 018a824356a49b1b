"""The Metrics port over Prometheus (prometheus-api-client).

``fetch(check, params)`` renders the check's plan (:func:`plan_queries`, which escapes every
parameter through ``controller.core.promql``), runs each query and returns a
:class:`CheckSample` for the pure judges. Failure handling, explicitly:

- every request has a timeout; connection errors, timeouts and 5xx are retried a bounded
  number of times with jittered exponential backoff (tenacity); nothing else is retried;
- a query that still fails, or that Prometheus rejects (4xx, e.g. a parse error), is an
  *error* result naming the lane, the check and Prometheus's own message;
- an empty result is *no data*; NaN is no data; +/-Inf is kept as a value (the judges
  decide); a range vector, a string or more than one series is an error that says how to
  fix the query;
- a template that cannot be rendered safely is an error for the whole check.

The client's own urllib3 retries are switched off so that tenacity is the single retry
policy and the bound on attempts is the one configured here.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import requests
import structlog
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from urllib3.util.retry import Retry

from controller.adapters.metrics.pods import fetch_pods
from controller.core.analysis.sample import (
    DEFAULT_MIN_WINDOW_SECONDS,
    CheckSample,
    QueryResult,
    ReleaseParams,
    ResultKind,
    plan_queries,
)
from controller.core.models import AnalysisCheck
from controller.core.promql import TemplateError
from controller.core.reasons import decode_promql

log = structlog.get_logger("changelane.metrics")

# prometheus-api-client reports a non-200 as "HTTP Status Code 400 (b'<body>')".
_CLIENT_ERROR = re.compile(r"HTTP Status Code (\d{3}) \((b'.*'|b\".*\")\)\s*$", re.DOTALL)


class _ServerError(Exception):
    """A 5xx from Prometheus: worth retrying."""


class _Rejected(Exception):  # noqa: N818 (not an error of ours: Prometheus said no)
    """A 4xx from Prometheus: the query is wrong; retrying cannot help."""


class PrometheusRequestError(Exception):
    """A request that failed for good; the message names what was asked and why."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, requests.ConnectionError | requests.Timeout | _ServerError)


class PrometheusMetrics:
    """Queries one Prometheus server; safe to share between checks (one HTTP session)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        max_backoff_s: float = 2.0,
        min_window_seconds: int = DEFAULT_MIN_WINDOW_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.max_backoff_s = max_backoff_s
        self.min_window_seconds = min_window_seconds
        self._sleep = sleep
        self._client = PrometheusConnect(
            url=url,
            timeout=timeout_s,  # type: ignore[arg-type]  # requests takes float seconds
            retry=Retry(total=0, status_forcelist=[]),
        )

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ one query

    def _raw_query(self, promql: str) -> Any:
        return self._classified(lambda: self._client.custom_query(promql))

    @staticmethod
    def _classified(call: Callable[[], Any]) -> Any:
        """Run one client call, turning its HTTP errors into retryable (5xx) or not (4xx)."""
        try:
            return call()
        except PrometheusApiClientException as exc:
            code, detail = _client_error(str(exc))
            if code >= 500:
                raise _ServerError(f"HTTP {code}: {detail}") from exc
            raise _Rejected(f"Prometheus rejected the query (HTTP {code}): {detail}") from exc

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=0.1, max=self.max_backoff_s),
            sleep=self._sleep,
        )

    def request(self, what: str, call: Callable[[PrometheusConnect], Any]) -> Any:
        """Run ``call(client)`` under this adapter's retry policy (the one the controller's
        instant queries use). Raises :class:`PrometheusRequestError` naming ``what``: with
        ``unreachable`` set when the retries were exhausted (down, timeouts, 5xx)."""
        try:
            return self._retrying()(self._classified, lambda: call(self._client))
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise PrometheusRequestError(
                f"{what}: Prometheus at {self.url} failed {self.attempts} attempts: "
                f"{type(cause).__name__}: {_short(cause)}",
                unreachable=True,
            ) from exc
        except _Rejected as exc:
            raise PrometheusRequestError(f"{what}: {exc}") from exc
        except (requests.RequestException, ValueError) as exc:
            raise PrometheusRequestError(
                f"{what}: Prometheus at {self.url}: {type(exc).__name__}: {_short(exc)}"
            ) from exc

    def query(self, promql: str) -> QueryResult:
        """Run one instant query; never raises."""
        return self._query(promql)[0]

    def _query(self, promql: str) -> tuple[QueryResult, bool]:
        """The result, and whether Prometheus itself was unreachable (retries exhausted)."""
        started = time.monotonic()
        retrying = self._retrying()
        unreachable = False
        try:
            result = _interpret(promql, retrying(self._raw_query, promql))
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            unreachable = True
            result = self._error(
                promql,
                f"Prometheus at {self.url} failed {self.attempts} attempts: "
                f"{type(cause).__name__}: {_short(cause)}",
            )
        except _Rejected as exc:
            result = self._error(promql, str(exc))
        except (requests.RequestException, ValueError) as exc:
            result = self._error(
                promql, f"Prometheus at {self.url}: {type(exc).__name__}: {_short(exc)}"
            )
        log.debug(
            "prometheus_query",
            query=promql,
            result=result.kind.value,
            value=result.value,
            detail=result.detail or None,
            duration_s=round(time.monotonic() - started, 4),
        )
        return result, unreachable

    def query_vector(self, promql: str) -> list[Any] | str:
        """Run one instant query expected to answer several series (``sum by (pod)``):
        the series, or why there are none to read. Never raises."""
        try:
            data = self.request("per-pod query", lambda client: client.custom_query(promql))
        except PrometheusRequestError as exc:
            return str(exc)
        if not isinstance(data, list) or (data and not isinstance(data[0], dict)):
            return "expected an instant vector"
        return data

    @staticmethod
    def _error(promql: str, detail: str) -> QueryResult:
        return QueryResult(promql, ResultKind.ERROR, detail=detail)

    # ------------------------------------------------------------------ one check

    def fetch(self, check: AnalysisCheck, params: ReleaseParams) -> CheckSample:
        """Everything ``check`` needs for this tick, as a sample for ``judge``."""
        if params.min_window_seconds != self.min_window_seconds:
            params = _with_min_window(params, self.min_window_seconds)
        where = f"lane {params.lane}, check {check.name}"
        try:
            plan = plan_queries(check, params)
        except TemplateError as exc:
            return CheckSample(
                lane=params.lane,
                check=check.name,
                window_seconds=params.window_seconds,
                min_window_seconds=params.min_window_seconds,
                error=f"{where}: cannot render its PromQL safely: {exc}",
            )
        results: dict[Any, QueryResult] = {}
        unreachable: str | None = None
        for planned in plan:
            if unreachable is not None:
                # Prometheus is down: do not spend the retry budget once per query.
                results[planned.key] = QueryResult(
                    planned.query, ResultKind.ERROR, detail=unreachable
                )
                continue
            result, down = self._query(planned.query)
            results[planned.key] = result
            if down:
                unreachable = result.detail
        sample = CheckSample(
            lane=params.lane,
            check=check.name,
            window_seconds=params.window_seconds,
            min_window_seconds=params.min_window_seconds,
            results=results,
        )
        if check.pod_label is not None and unreachable is None:
            sample = replace(sample, pods=fetch_pods(self, check, params))
        if unreachable is not None:
            return CheckSample(
                lane=sample.lane,
                check=sample.check,
                window_seconds=sample.window_seconds,
                min_window_seconds=sample.min_window_seconds,
                results=results,
                error=f"{where}: {unreachable}",
            )
        return sample


def _with_min_window(params: ReleaseParams, seconds: int) -> ReleaseParams:
    return replace(params, min_window_seconds=seconds)


def _client_error(text: str) -> tuple[int, str]:
    """The HTTP status and Prometheus's own error message from the client's exception."""
    match = _CLIENT_ERROR.search(text)
    if match is None:
        return 0, text[:300]
    code = int(match.group(1))
    try:
        body = json.loads(ast.literal_eval(match.group(2)))
        return code, str(body["error"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        return code, match.group(2)[:300]


def _short(exc: BaseException | None) -> str:
    # HTTP clients quote the query string in their errors: show the PromQL as written.
    text = decode_promql(str(exc)) if exc is not None else ""
    return text if len(text) <= 300 else text[:300] + "..."


def _interpret(promql: str, data: Any) -> QueryResult:
    """Turn the ``result`` field of an instant query into one value, no data or an error."""

    def err(detail: str) -> QueryResult:
        return QueryResult(promql, ResultKind.ERROR, detail=detail)

    if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], dict):
        raw: Any = data[1]  # a scalar: [time, "value"]
    elif isinstance(data, list):
        if not data:
            return QueryResult(promql, ResultKind.NO_DATA, detail="empty result")
        if len(data) > 1:
            return err(f"query returned {len(data)} series; aggregate it to one, e.g. sum(...)")
        series = data[0]
        if not isinstance(series, dict) or "value" not in series:
            return err("query returned a range vector; use an instant query, e.g. increase(x[w])")
        raw = series["value"][1]
    else:
        return err(f"unexpected result {str(data)[:100]!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return err(f"non-numeric value {raw!r}")
    if math.isnan(value):
        return QueryResult(promql, ResultKind.NO_DATA, detail="NaN (no events in the window)")
    return QueryResult(promql, ResultKind.OK, value=value)
