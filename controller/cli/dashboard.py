"""``changelane dashboard``: the read-only web dashboard, served from your machine with your
kubeconfig (loopback by default)."""

from __future__ import annotations

import errno
import threading

import click


@click.command("dashboard")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
)
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535))
def dashboard(kubeconfig: str | None, address: str, port: int) -> None:
    """Serve the dashboard: lanes, releases in flight, each release's timeline and evidence
    chart, history. Read-only; Ctrl-C ends it."""
    from controller.adapters.kube.api import KubeApi
    from controller.adapters.kube.client import api_client
    from controller.dashboard.app import dashboard_app, serve

    try:
        api = KubeApi(api_client(kubeconfig))
    except Exception as err:
        raise click.ClickException(f"cannot load a kubeconfig: {err}") from None
    try:
        server, _ = serve(dashboard_app(api), address, port)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {address} is already in use (choose another with --port)"
            ) from None
        raise click.ClickException(f"cannot listen on {address}:{port}: {err.strerror}") from None
    host = f"[{address}]" if ":" in address else address
    click.echo(f"dashboard: http://{host}:{server.server_port}/")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
