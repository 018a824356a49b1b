"""Replay of recorded traces: ``changelane bench decisions --traces FILE.jsonl``.

One JSON object a line (counts per interval, not cumulative)::

    {"family": str, "name": str, "interval_s": number, "expect": "promote"|"rollback",
     "onset_s": number|null,
     "canary": {"requests": [int], "errors": [int]},
     "baseline": {"requests": [int], "errors": [int]},
     "latency": {"le": [number], "canary": [[int]], "baseline": [[int]]}}   (optional)

Each arm may also carry ``"pods": {"<pod>": {"requests": [int], "errors": [int]}}``
(optional, both arms or neither): per-pod counts, as ``sum by (pod)`` returns them. A
lane check with ``podLabel`` then uses them (per-pod evidence); the arm's own counts
still feed the arm-level test.

``"history": {"requests": [int], "errors": [int]}`` (optional, with ``"pods"`` like an
arm's when the trace has pods) is the baseline's counts per interval before the release
started, oldest first: the judge's noise prior comes from it
(``controller.core.analysis.history``), as the controller's comes from Prometheus. Without
it (or too little of it) the judge keeps its fixed prior.

The whole file is validated before anything is replayed: every problem is reported with
its line number and field, and one bad line means nothing is replayed. Counts are taken
as observed (step weights do not rescale them). With a lane, its steps, minimum durations,
interval and checks are used; latency checks are skipped with a note when a trace has no
``latency``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.bench import decisions as bench
from controller.core.models import AnalysisCheck, CheckKind, StrategySpec, parse_duration


class TraceFileError(Exception):
    """Every problem found in a trace file, one line each."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n" + "\n".join(problems))


@dataclass(frozen=True)
class RecordedTrace:
    family: str
    name: str
    interval_s: float
    expect: str
    onset_s: float | None
    canary: tuple[list[float], list[float]]
    baseline: tuple[list[float], list[float]]
    latency: tuple[list[float], list[list[int]], list[list[int]]] | None
    canary_pods: dict[str, tuple[list[float], list[float]]] | None = None
    baseline_pods: dict[str, tuple[list[float], list[float]]] | None = None
    history: tuple[list[float], list[float]] | None = None
    history_pods: dict[str, tuple[list[float], list[float]]] | None = None


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _counts(
    where: str, obj: Any, field: str, problems: list[str]
) -> tuple[list[float], list[float]] | None:
    if not isinstance(obj, dict):
        problems.append(f"{where}: field {field!r}: expected an object with requests and errors")
        return None
    arrays: dict[str, list[float]] = {}
    for key in ("requests", "errors"):
        value = obj.get(key)
        path = f"{field}.{key}"
        if value is None:
            problems.append(f"{where}: field {path!r} is missing")
            continue
        if not isinstance(value, list) or not value:
            problems.append(f"{where}: field {path!r}: expected a non-empty list of counts")
            continue
        bad = [i for i, v in enumerate(value) if not _is_number(v) or v < 0]
        if bad:
            problems.append(
                f"{where}: field {path}[{bad[0]}] is {value[bad[0]]!r}: expected a count >= 0"
            )
            continue
        arrays[key] = [float(v) for v in value]
    if len(arrays) < 2:
        return None
    req, err = arrays["requests"], arrays["errors"]
    if len(req) != len(err):
        problems.append(
            f"{where}: fields {field}.requests and {field}.errors have different lengths "
            f"({len(req)} and {len(err)})"
        )
        return None
    over = [i for i in range(len(req)) if err[i] > req[i]]
    if over:
        i = over[0]
        problems.append(
            f"{where}: field {field}.errors[{i}] is {err[i]:g}, more than "
            f"{field}.requests[{i}] {req[i]:g}"
        )
        return None
    return req, err


def _pods(
    where: str, obj: Any, field: str, length: int, problems: list[str]
) -> dict[str, tuple[list[float], list[float]]] | None:
    """An arm's optional ``pods``: ``{name: {"requests": [int], "errors": [int]}}``, each
    as long as the arm's counts."""
    if not isinstance(obj, dict) or not obj:
        problems.append(f"{where}: field {field!r}: expected an object of pods")
        return None
    out: dict[str, tuple[list[float], list[float]]] = {}
    for name, counts in obj.items():
        path = f"{field}.{name}"
        parsed = _counts(where, counts, path, problems)
        if parsed is None:
            continue
        if len(parsed[0]) != length:
            problems.append(
                f"{where}: field {path}.requests has {len(parsed[0])} intervals, the arm {length}"
            )
            continue
        out[name] = parsed
    return out if len(out) == len(obj) else None


def _latency(
    where: str, obj: Any, length: int, problems: list[str]
) -> tuple[list[float], list[list[int]], list[list[int]]] | None:
    if not isinstance(obj, dict):
        problems.append(f"{where}: field 'latency': expected an object with le, canary, baseline")
        return None
    le = obj.get("le")
    if not isinstance(le, list) or len(le) < 2:
        problems.append(f"{where}: field 'latency.le': expected ascending bounds ending in +Inf")
        return None
    bounds: list[float] = []
    for i, v in enumerate(le):
        if isinstance(v, str) and v in ("+Inf", "Inf", "inf"):
            bounds.append(math.inf)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            bounds.append(float(v))
        else:
            problems.append(f"{where}: field latency.le[{i}] is {v!r}: expected a number")
            return None
    if bounds[-1] != math.inf or any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)):
        problems.append(f"{where}: field 'latency.le': expected ascending bounds ending in +Inf")
        return None
    arms: list[list[list[int]]] = []
    for arm in ("canary", "baseline"):
        rows = obj.get(arm)
        if not isinstance(rows, list):
            problems.append(f"{where}: field 'latency.{arm}' is missing or not a list")
            return None
        if len(rows) != length:
            problems.append(
                f"{where}: field 'latency.{arm}' has {len(rows)} intervals, the counts {length}"
            )
            return None
        for i, row in enumerate(rows):
            if (
                not isinstance(row, list)
                or len(row) != len(bounds)
                or any(not _is_number(v) or v < 0 for v in row)
            ):
                problems.append(
                    f"{where}: field latency.{arm}[{i}]: expected {len(bounds)} bucket "
                    "increases >= 0 (one per le)"
                )
                return None
        arms.append([[int(v) for v in row] for row in rows])
    return bounds, arms[0], arms[1]


def parse(path: Path) -> list[RecordedTrace]:
    """All traces of the file, or :class:`TraceFileError` listing every problem."""
    problems: list[str] = []
    traces: list[RecordedTrace] = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise TraceFileError(path, [f"cannot read: {exc}"]) from exc
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"line {number}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{where}: expected a JSON object")
            continue
        before = len(problems)
        for key in ("family", "name"):
            if not isinstance(obj.get(key), str) or not obj.get(key):
                problems.append(f"{where}: field {key!r}: expected a non-empty string")
        interval: Any = obj.get("interval_s")
        if not _is_number(interval) or interval <= 0:
            problems.append(f"{where}: field 'interval_s': expected a number > 0")
        expect: Any = obj.get("expect")
        if expect not in ("promote", "rollback"):
            problems.append(f'{where}: field \'expect\': expected "promote" or "rollback"')
        onset: Any = obj.get("onset_s")
        if "onset_s" not in obj:
            problems.append(f"{where}: field 'onset_s' is missing (a number or null)")
        elif onset is not None and (not _is_number(onset) or onset < 0):
            problems.append(f"{where}: field 'onset_s': expected a number >= 0 or null")
        canary = _counts(where, obj.get("canary"), "canary", problems)
        baseline = _counts(where, obj.get("baseline"), "baseline", problems)
        if canary and baseline and len(canary[0]) != len(baseline[0]):
            problems.append(
                f"{where}: fields canary.requests and baseline.requests have different "
                f"lengths ({len(canary[0])} and {len(baseline[0])})"
            )
        split: dict[str, dict[str, tuple[list[float], list[float]]] | None] = {}
        for arm, counts in (("canary", canary), ("baseline", baseline)):
            raw = obj.get(arm)
            if counts is not None and isinstance(raw, dict) and raw.get("pods") is not None:
                split[arm] = _pods(where, raw["pods"], f"{arm}.pods", len(counts[0]), problems)
        if len(split) == 1:
            problems.append(f"{where}: field 'pods': give both arms' pods or neither")
        history = history_pods = None
        raw_history = obj.get("history")
        if raw_history is not None:
            history = _counts(where, raw_history, "history", problems)
            pods_raw = raw_history.get("pods") if isinstance(raw_history, dict) else None
            if history is not None and pods_raw is not None:
                history_pods = _pods(where, pods_raw, "history.pods", len(history[0]), problems)
        latency = None
        if obj.get("latency") is not None and canary is not None:
            latency = _latency(where, obj["latency"], len(canary[0]), problems)
        if len(problems) > before or canary is None or baseline is None:
            continue
        traces.append(
            RecordedTrace(
                family=obj["family"],
                name=obj["name"],
                interval_s=float(interval),
                expect=expect,
                onset_s=None if onset is None else float(onset),
                canary=canary,
                baseline=baseline,
                latency=latency,
                canary_pods=split.get("canary"),
                baseline_pods=split.get("baseline"),
                history=history,
                history_pods=history_pods,
            )
        )
    if problems:
        raise TraceFileError(path, problems)
    if not traces:
        raise TraceFileError(path, ["no traces: the file has no JSON lines"])
    return traces


def _to_traces(t: RecordedTrace, steps: int) -> bench.Traces:
    def stack(values: list[float]) -> Any:
        a = np.asarray(values, dtype=np.float64)[None, None, :]
        return np.broadcast_to(a, (steps, 1, a.shape[-1]))

    def buckets(rows: list[list[int]]) -> Any:
        a = np.asarray(rows, dtype=np.int32)[None, None, :, :]
        return np.broadcast_to(a, (steps, 1, *a.shape[-2:]))

    scenario = bench.Scenario(
        t.family, 0.0, t.expect == "rollback", onset_s=t.onset_s, steps_ratio=False
    )
    return bench.Traces(
        scenario,
        stack(t.canary[0]),
        stack(t.canary[1]),
        stack(t.baseline[0]),
        stack(t.baseline[1]),
        None if t.latency is None else buckets(t.latency[1]),
        None if t.latency is None else buckets(t.latency[2]),
        interval_s=t.interval_s,
        canary_pods=_pod_arrays(t.canary_pods, steps),
        baseline_pods=_pod_arrays(t.baseline_pods, steps),
        history=_history(t),
    )


def _history(t: RecordedTrace) -> bench.History | None:
    """The trace's baseline history as the bench carries it: one trace, per interval."""
    if t.history is None:
        return None
    requests = np.asarray(t.history[0], dtype=np.float64)[None, :]
    errors = np.asarray(t.history[1], dtype=np.float64)[None, :]
    pods = t.history_pods
    if not pods:
        return bench.History(requests, errors, interval_s=t.interval_s)
    names = tuple(pods)

    def per_pod(index: int) -> Any:
        return np.asarray([pods[n][index] for n in names], dtype=np.int32).T[None]

    return bench.History(
        requests,
        errors,
        interval_s=t.interval_s,
        pod_names=names,
        pod_requests=per_pod(0),
        pod_errors=per_pod(1),
    )


def _pod_arrays(
    pods: dict[str, tuple[list[float], list[float]]] | None, steps: int
) -> bench.PodArrays | None:
    if not pods:
        return None
    names = tuple(pods)

    def stack(index: int) -> Any:
        a = np.asarray([pods[n][index] for n in names], dtype=np.int32).T[None, None]
        return np.broadcast_to(a, (steps, 1, *a.shape[-2:]))

    return bench.PodArrays(names, stack(0), stack(1))


def replay(
    path: Path, lane_path: Path | None = None, noise_prior: str | None = None
) -> dict[str, Any]:
    """``noise_prior``: set every sequential check's ``noisePrior`` (None: as the lane
    declares it; the bench lane's is ``fixed``)."""
    traces = parse(path)
    notes: list[str] = []
    lane = bench.bench_lane() if lane_path is None else _lane_from(lane_path)
    lane = bench.with_noise_prior(lane, noise_prior)
    latency_kinds = {CheckKind.THRESHOLD, CheckKind.RELATIVE}
    started = time.monotonic()
    by_family: dict[str, dict[str, list[bench.Decision]]] = {}
    meta: dict[str, tuple[bool, float]] = {}
    for t in traces:
        checks = lane.checks
        if t.latency is None and any(c.kind in latency_kinds for c in checks):
            skipped = [c.name for c in checks if c.kind in latency_kinds]
            checks = [c for c in checks if c.kind not in latency_kinds]
            notes.append(f"{t.family}/{t.name}: no latency: skipped {', '.join(skipped)}")
        elif t.latency is not None:
            _set_buckets(t.latency[0])
        if not checks:
            notes.append(f"{t.family}/{t.name}: no check left to run; not replayed")
            continue
        tr = _to_traces(t, len(lane.weights))
        this = bench.BenchLane(checks, lane.interval_s, lane.strategy)
        results = by_family.setdefault(t.family, {j: [] for j in bench.JUDGES})
        results["changelane"].extend(bench.run_changelane(tr, this))
        results["flagger"].extend(bench.run_flagger(tr))
        results["argo"].extend(bench.run_argo(tr))
        meta[t.family] = (t.expect == "rollback", t.onset_s or 0.0)
    _set_buckets(None)
    rows = []
    for family, results in by_family.items():
        regression, onset = meta[family]
        for judge_name in bench.JUDGES:
            rows.append(
                bench.figures(
                    family, judge_name, results[judge_name], regression=regression, onset_s=onset
                )
            )
    return {
        "scenarios": rows,
        "settings": {
            "traces": len(traces),
            "seed": None,
            "source": str(path),
            "lane": str(lane_path) if lane_path else "bench default",
            "changelane_interval_s": lane.interval_s,
        },
        "notes": notes,
        "elapsed_s": time.monotonic() - started,
    }


_DEFAULT_BUCKETS = bench.BUCKETS


def _set_buckets(le: list[float] | None) -> None:
    """The histogram bounds ``histogram_quantile`` interpolates in (finite ones)."""
    bench.BUCKETS = _DEFAULT_BUCKETS if le is None else tuple(b for b in le if b != math.inf)


def _lane_from(path: Path) -> bench.BenchLane:
    import yaml

    from controller.core.models import ChangeLane

    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    lanes = [ChangeLane.model_validate(d) for d in docs if d.get("kind") == "ChangeLane"]
    if not lanes:
        raise TraceFileError(path, ["no ChangeLane document in the lane file"])
    spec = lanes[0].spec
    checks: list[AnalysisCheck] = list(spec.analysis.checks)
    strategy: StrategySpec = spec.strategy
    return bench.BenchLane(checks, parse_duration(spec.analysis.interval), strategy)
