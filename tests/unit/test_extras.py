"""The lean runtime: `changelane run` needs only the runtime dependencies; plotting, the
simulated cluster, the demo and the benchmarks are extras, and a missing extra is named."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement

from controller.cli import extras
from controller.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "numpy", "jsonschema", "jsonpatch")


def project() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]  # type: ignore[no-any-return]


def test_runtime_dependencies_leave_the_extras_out() -> None:
    runtime = {Requirement(r).name for r in project()["dependencies"]}  # type: ignore[attr-defined]
    assert not runtime & set(HEAVY)
    optional = project()["optional-dependencies"]
    assert {Requirement(r).name for r in optional["plot"]} == {"matplotlib"}  # type: ignore[index]
    assert {"jsonschema", "jsonpatch", "numpy"} <= {
        Requirement(r).name
        for r in optional["demo"]  # type: ignore[index]
    }
    # The README's test command installs `.[test]`, which must bring both.
    assert "changelane[plot,demo]" in optional["test"]  # type: ignore[index]


def test_changelane_run_works_without_the_extras_installed() -> None:
    """As in the image: the extras (and the test-only kubernetes-validate, which the
    kubernetes client imports when present) cannot be imported; `changelane run` starts."""
    blocked = (*HEAVY, "kubernetes_validate")
    code = f"""
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed (test)")
        return None
sys.meta_path.insert(0, Absent())
from controller.cli.main import cli
cli(["run", "--help"])
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert "--kubeconfig" in done.stdout


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["demo"], "demo"),
        (["sim-cluster", "--kubeconfig", "kc"], "demo"),
        (["bench", "decisions"], "demo"),
        (["audit", "show", "r", "--file", "log.jsonl", "--plot", "r.png"], "plot"),
    ],
)
def test_a_missing_extra_is_named_with_the_command_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], extra: str
) -> None:
    real = extras.importlib.util.find_spec
    missing = set(extras.EXTRAS[extra][1])
    monkeypatch.setattr(
        extras.importlib.util,
        "find_spec",
        lambda name, *a: None if name in missing else real(name, *a),
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "log.jsonl").write_text("")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert f"pip install 'changelane[{extra}]'" in result.output, result.output
    assert "missing:" in result.output
