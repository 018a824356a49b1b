"""Fixtures for tests that need the real Prometheus binary.

Locally a missing binary skips them; in CI (CHANGELANE_REQUIRE_PROMETHEUS=1) it fails them,
so these tests can never silently stop running.
"""

from __future__ import annotations

import os

import pytest

from controller.adapters.metrics.prometheus_process import prometheus_binary


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    found = prometheus_binary()
    if found is None:
        message = "the prometheus binary is not installed (apt-get install prometheus)"
        if os.environ.get("CHANGELANE_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"CHANGELANE_REQUIRE_PROMETHEUS=1 but {message}")
        pytest.skip(message)
    return found
