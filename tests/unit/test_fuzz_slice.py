"""A seed-fixed slice of ``changelane bench fuzz`` (the full run is the benchmark)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.bench import fuzz
from controller.core.models.lane import ChangeLane
from controller.lanefiles import LoadedLane


def test_a_seed_fixed_slice_has_no_crash_and_no_wrong_accept() -> None:
    result = fuzz.run(lanes=400, annotations=400, seed=17)
    for corpus in result["corpora"]:
        assert corpus["crashes"] == 0, corpus["examples"]
        assert corpus["wrong_accepts"] == 0, corpus["examples"]
        assert corpus["wrong_rejects"] == 0, corpus["examples"]
    assert [c["inputs"] for c in result["corpora"]][:2] == [400, 400]


def test_the_slice_covers_every_lane_mutation() -> None:
    names = {name for name, _, _ in fuzz.generate_lanes(400, seed=17)}
    assert names == {name for name, _, _ in fuzz.LANE_MUTATIONS}


def test_a_validator_that_accepted_everything_would_be_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The oracle can fail: a loader that accepts every document is flagged."""
    lane = ChangeLane.model_validate(fuzz.BASE_LANE)

    def accept_all(text: str | bytes, file: str) -> tuple[list[Any], list[Any]]:
        return [LoadedLane("fuzz.yaml", 0, lane)], []

    monkeypatch.setattr(fuzz, "check_text", accept_all)
    result = fuzz.fuzz_lanes(200, seed=17)
    assert result.wrong_accepts > 50


def test_naive_substitution_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def naive(template: str, parameters: dict[str, str]) -> str:
        out = template
        for name, value in parameters.items():
            out = out.replace("{{ " + name + " }}", value)
        return out

    monkeypatch.setattr(fuzz, "render", naive)
    result = fuzz.fuzz_injection()
    assert result.wrong_accepts + result.crashes > 20
