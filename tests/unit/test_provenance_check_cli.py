"""`changelane provenance check`: the controller's provenance gates, offline."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from controller.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
LANE = str(REPO / "lanes" / "docs-site.yaml")


def manifest(path: Path, image: str, change: str, listed: str | None = None) -> str:
    annotations = {
        "changelane.dev/agent": "claude-code:claude-opus-4",
        "changelane.dev/change": change,
        "changelane.dev/tests": "passed; cmd=pytest -q",
        "changelane.dev/images": listed or image,
    }
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "site", "namespace": "docs"},
        "spec": {
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {"containers": [{"name": "site", "image": image}]},
            }
        },
    }
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["provenance", "check", "--lane", LANE, *args])
    return result.exit_code, result.output


def test_a_release_with_its_own_provenance_passes(tmp_path: Path) -> None:
    old = manifest(tmp_path / "old.yaml", "docs:1", "abc1234")
    new = manifest(tmp_path / "new.yaml", "docs:2", "def5678")
    code, out = run(new, "--previous", old)
    assert code == 0, out
    assert out.splitlines()[-1].endswith("would pass by lane docs-site's provenance gates")


def test_every_reason_is_printed_and_the_exit_code_is_one(tmp_path: Path) -> None:
    old = manifest(tmp_path / "old.yaml", "docs:1", "abc1234")
    carried = manifest(tmp_path / "new.yaml", "docs:2", "abc1234", listed="docs:1")
    code, out = run(carried, "--previous", old, "--rolled-back", "abc1234")
    assert code == 1
    failures = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert any("does not list 'docs:2' that the pod template runs" in f for f in failures)
    assert any("carried over unchanged" in f for f in failures)
    assert any("history: change 'abc1234' was already rolled back" in f for f in failures)


def test_a_manifest_that_is_not_a_deployment_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    code, out = run(str(path))
    assert code == 2 and "expected a Deployment manifest" in out
