"""The CLI behaves in a shell: `| head` ends it quietly; a busy port is one line."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.runtime.harness import deployment_doc, running, wait


def test_status_piped_into_head_exits_quietly(tmp_path: Path) -> None:
    with running(tmp_path) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.deployment("web-primary") is not None)
        env.set_image("web:2")
        env.wait_phase(["Progressing", "Promoted"])
        pipeline = subprocess.run(
            # `true` has gone before the command writes: every write meets a closed pipe.
            f"{sys.executable} -m controller status --kubeconfig {env.kubeconfig} "
            f"2>{tmp_path}/err | true; rc=${{PIPESTATUS[0]}}; cat {tmp_path}/err; echo rc=$rc",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            text=True,
            timeout=60,
        )
    # Nothing on stderr: click ends a command whose reader went away quietly (exit 1).
    assert pipeline.stdout == "rc=1\n"


def test_a_busy_metrics_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with running(tmp_path, start=False) as env:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "controller",
                    "run",
                    "--kubeconfig",
                    str(env.kubeconfig),
                    "--no-leader-election",
                    "--flag-provider",
                    "none",
                    "--metrics-address",
                    "127.0.0.1",
                    "--metrics-port",
                    str(port),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
    assert errors == [
        f"Error: port {port} on 127.0.0.1 is already in use (choose another with --metrics-port)"
    ]
    assert "Traceback" not in proc.stderr
