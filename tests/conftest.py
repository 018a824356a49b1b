from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# Property tests judge logic, not speed: on a loaded 2-core CI machine a per-example
# deadline only produces flaky "failures" (speed lives in the benchmarks).
settings.register_profile("changelane", deadline=None)
settings.load_profile("changelane")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO
