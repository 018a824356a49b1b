"""The kill switch against the real flagd provider in FILE mode, with real definitions."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.flags.kill_switch import KillSwitch
from controller.adapters.flags.provider_config import (
    FlagProviderConfig,
    ProviderConfigError,
    build_provider,
)
from tests.unit.lane_fixtures import lane

POLL_MS = 200
FLAG = "changelane.lane.docs-site.autonomy"


def autonomy_flag(default: str, targeting: dict[str, Any] | None = None) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": default,
    }
    if targeting:
        flag["targeting"] = targeting
    return {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {FLAG: flag}}


def write(path: Path, content: str | dict[str, Any]) -> None:
    # Atomic replace, as a ConfigMap volume update or a careful operator does it.
    text = content if isinstance(content, str) else json.dumps(content)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    write(path, autonomy_flag("on"))
    return path


def switch_for(path: Path) -> KillSwitch:
    config = FlagProviderConfig(kind="flagd-file", path=str(path), poll_interval_ms=POLL_MS)
    return KillSwitch(build_provider(config), domain=f"test-{uuid.uuid4()}")


@pytest.fixture
def switch(flag_file: Path) -> Iterator[KillSwitch]:
    with switch_for(flag_file) as ks:
        yield ks


def check(ks: KillSwitch, **kw: Any) -> Any:
    args = {"namespace": "docs", "workload": "site", "agent": "claude-code", **kw}
    return ks.check(lane(), **args)


def wait_one_poll() -> None:
    # One poll interval plus scheduling slack on a shared machine.
    time.sleep(POLL_MS / 1000 + 0.25)


def test_on_then_switched_off_within_one_poll(switch: KillSwitch, flag_file: Path) -> None:
    result = check(switch)
    assert result.passed and result.gate == "killSwitch"
    assert result.reason == f"flag {FLAG} on for lane docs-site, docs/site, agent claude-code"
    write(flag_file, autonomy_flag("off"))
    wait_one_poll()
    result = check(switch)
    assert not result.passed and not result.permanent
    assert result.reason == (
        f"autonomy off for lane docs-site, docs/site, agent claude-code: flag {FLAG} is "
        "False (variant off)"
    )
    write(flag_file, autonomy_flag("on"))
    wait_one_poll()
    assert check(switch).passed


def test_targeting_switches_off_one_agent_or_namespace(switch: KillSwitch, flag_file: Path) -> None:
    rule = {
        "if": [
            {
                "or": [
                    {"==": [{"var": "agent"}, "rogue-bot"]},
                    {"==": [{"var": "namespace"}, "frozen"]},
                ]
            },
            "off",
            "on",
        ]
    }
    write(flag_file, autonomy_flag("on", rule))
    wait_one_poll()
    assert check(switch).passed
    assert not check(switch, agent="rogue-bot").passed
    assert not check(switch, namespace="frozen").passed


def test_missing_flag_fails_closed(switch: KillSwitch, flag_file: Path) -> None:
    write(flag_file, {"flags": {}})
    wait_one_poll()
    result = check(switch)
    assert not result.passed
    assert f"flag {FLAG} FLAG_NOT_FOUND" in result.reason and "failing closed" in result.reason


def test_disabled_and_non_boolean_flags_fail_closed(switch: KillSwitch, flag_file: Path) -> None:
    disabled = autonomy_flag("on")
    disabled["flags"][FLAG]["state"] = "DISABLED"
    write(flag_file, disabled)
    wait_one_poll()
    assert "is disabled" in check(switch).reason
    stringly = autonomy_flag("on")
    stringly["flags"][FLAG]["variants"] = {"on": "true", "off": "false"}
    write(flag_file, stringly)
    wait_one_poll()
    result = check(switch)
    assert not result.passed and "TYPE_MISMATCH" in result.reason


def test_unparseable_file_keeps_last_good_and_reports(switch: KillSwitch, flag_file: Path) -> None:
    assert check(switch).passed
    write(flag_file, '{"flags": {"oops": ')
    wait_one_poll()
    result = check(switch)
    assert result.passed, "last good definitions must stay in force"
    assert switch.source_error == "Could not parse JSON flag data from file"
    assert result.reason.endswith(
        "; flag source error, last good definitions in force for at most 60s: "
        "Could not parse JSON flag data from file"
    )
    # A good file clears the error and takes effect.
    write(flag_file, autonomy_flag("off"))
    wait_one_poll()
    assert switch.source_error is None
    assert not check(switch).passed


def test_provider_that_cannot_start_fails_closed(tmp_path: Path) -> None:
    with switch_for(tmp_path / "absent.json") as ks:
        result = check(ks)
    assert not result.passed
    assert "flag provider failed to start" in result.reason


def test_never_started_provider_is_not_ready(flag_file: Path) -> None:
    ks = switch_for(flag_file)  # start() not called: nothing bound to the domain yet
    result = check(ks)
    assert not result.passed and "flag provider not started" in result.reason


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="flagd-file needs path"):
        FlagProviderConfig(kind="flagd-file")
    with pytest.raises(ValueError, match="entry-point needs entryPoint"):
        FlagProviderConfig.model_validate({"kind": "entry-point"})


def test_entry_point_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real installed distribution, as pip would lay it out, registering a provider.
    (tmp_path / "fakeflags.py").write_text(
        "from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider\n"
        "def make(on):\n"
        "    flag = InMemoryFlag('on' if on else 'off', {'on': True, 'off': False})\n"
        "    return InMemoryProvider({'changelane.lane.docs-site.autonomy': flag})\n"
    )
    dist = tmp_path / "fakeflags-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeflags\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[changelane.flag_providers]\nmemory = fakeflags:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = FlagProviderConfig.model_validate(
        {"kind": "entry-point", "entryPoint": "memory", "options": {"on": True}}
    )
    with KillSwitch(build_provider(config), domain=f"test-{uuid.uuid4()}") as ks:
        assert check(ks).passed
    missing = FlagProviderConfig.model_validate({"kind": "entry-point", "entryPoint": "nope"})
    with pytest.raises(ProviderConfigError, match="no OpenFeature provider named 'nope'"):
        build_provider(missing)
    sys.modules.pop("fakeflags", None)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_deleted_flag_file_turns_autonomy_off_after_the_grace_period(
    flag_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting the flags (or their ConfigMap) used to keep autonomy on indefinitely."""
    clock = FakeClock()
    config = FlagProviderConfig(kind="flagd-file", path=str(flag_file), poll_interval_ms=POLL_MS)
    changes: list[str | None] = []
    with KillSwitch(
        build_provider(config), domain=f"test-{uuid.uuid4()}", grace_s=30, clock=clock
    ) as ks:
        ks.add_listener(lambda: changes.append(ks.source_error))
        assert check(ks).passed
        flag_file.unlink()
        for _ in range(4):  # several polls of the file watcher, each reporting it missing
            wait_one_poll()
        deadline = time.monotonic() + 15  # a loaded machine may delay the watcher's thread
        while ks.source_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        within = check(ks)
        assert within.passed, "inside the grace period the last good definitions hold"
        assert "last good definitions in force for at most 30s" in within.reason
        clock.now += 31
        after = check(ks)
        assert not after.passed
        assert "flag source error for longer than the 30s grace period" in after.reason
        assert after.reason.endswith("Provided file path not valid; autonomy off, failing closed")
        assert ks.source_state().failing_closed
        # Once per change of state: one listener call, one flagd log line (no traceback).
        assert changes == ["Provided file path not valid"]
        flagd = [r for r in caplog.records if r.name == "openfeature.contrib"]
        assert [r.getMessage() for r in flagd] == ["Provided file path not valid"]
        assert all(r.exc_info is None for r in flagd)
        write(flag_file, autonomy_flag("on"))
        deadline = time.monotonic() + 15
        while ks.source_error is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert check(ks).passed, "a source that is back switches autonomy back on"
        assert changes == ["Provided file path not valid", None]


def test_unreadable_flag_file_fails_closed_after_grace(flag_file: Path) -> None:
    clock = FakeClock()
    config = FlagProviderConfig(kind="flagd-file", path=str(flag_file), poll_interval_ms=POLL_MS)
    with KillSwitch(
        build_provider(config), domain=f"t-{uuid.uuid4()}", grace_s=5, clock=clock
    ) as ks:
        assert check(ks).passed
        # Unreadable, even for root: a directory where the file was.
        flag_file.unlink()
        flag_file.mkdir()
        wait_one_poll()
        wait_one_poll()
        assert check(ks).passed
        clock.now += 6
        result = check(ks)
        assert not result.passed and "failing closed" in result.reason
