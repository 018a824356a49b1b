"""``changelane sim-cluster``: run the simulated Kubernetes cluster until interrupted."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from controller.cli.extras import require_extra


@click.command("sim-cluster")
@click.option(
    "--kubeconfig",
    "kubeconfig_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the kubeconfig once the cluster is ready.",
)
@click.option("--port", default=0, show_default=True, help="Port on 127.0.0.1 (0 = any free).")
@click.option("--ready-delay", default=1.0, show_default=True, help="Seconds until pods are Ready.")
@click.option(
    "--crd-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="CRD YAML files to serve (default: the chart's generated CRDs).",
)
@click.option(
    "--token-auth",
    is_flag=True,
    help="Require a random bearer token (written to the kubeconfig; kubectl will not send it "
    "over plain HTTP, the Python client will).",
)
def sim_cluster(
    kubeconfig_path: Path,
    port: int,
    ready_delay: float,
    crd_dir: Path | None,
    token_auth: bool,
) -> None:
    """Serve a simulated cluster on loopback; kubectl works with --kubeconfig FILE."""
    require_extra("demo", "changelane sim-cluster")
    from controller.sim.cluster import SimCluster

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sim = SimCluster(
        port=port, ready_delay=ready_delay, crd_dir=crd_dir, token="auto" if token_auth else None
    )
    with sim:
        sim.write_kubeconfig(kubeconfig_path)
        click.echo(f"simulated cluster serving at {sim.url}", err=True)
        click.echo(f"kubeconfig written to {kubeconfig_path}", err=True)
        click.echo(f"try: kubectl --kubeconfig {kubeconfig_path} get namespaces", err=True)
        while not stop.wait(0.5):
            pass
    click.echo("simulated cluster stopped", err=True)
