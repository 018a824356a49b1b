"""No reconcile runs before every informer has listed once (client-go's WaitForCacheSync):
a cache that has not listed answers "missing" for objects that exist, and a missing canary
reads as a finished rollback."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from controller.sim.errors import ApiError
from tests.runtime.harness import NS, Env, deployment_doc, new_controller, running, wait


def _exists(env: Env, name: str) -> bool:
    try:
        env.sim.store.get_obj("deployments", NS, name)
    except ApiError:
        return False
    return True


def test_workers_wait_until_every_informer_has_listed(tmp_path: Path) -> None:
    with running(tmp_path, start=False) as env:
        env.sim.store.create("deployments", deployment_doc())
        reconciled: list[Any] = []
        controller = new_controller(
            env.kubeconfig, env.sim, env.sink, on_reconcile=[lambda key, _: reconciled.append(key)]
        )
        # The Deployment informer "has not listed yet" until the test says so.
        listed = threading.Event()
        deployments = controller.informers["Deployment"]
        synced = deployments.has_synced
        deployments.has_synced = lambda: listed.is_set() and synced()  # type: ignore[method-assign]
        env.controllers.append(controller)
        controller.start()

        wait(
            lambda: all(
                i.has_synced() for k, i in controller.informers.items() if k != "Deployment"
            )
        )
        time.sleep(1.0)  # workers would have reconciled the queued keys by now
        assert reconciled == []
        assert not _exists(env, "web-primary")

        listed.set()

        # The primary is created inside the reconcile, before the hook records its key:
        # wait for both rather than reading the key the moment the primary appears.
        def adopted() -> bool:
            return _exists(env, "web-primary") and ("Deployment", NS, "web") in reconciled

        wait(adopted, timeout=20)
        assert _exists(env, "web-primary")
        assert ("Deployment", NS, "web") in reconciled
