"""Building an ``ApiClient`` from a kubeconfig or the in-cluster service account.

Each controller instance gets its own ``Configuration`` rather than the client's global
default, so two controllers (or a controller and a test) can live in one process.
"""

from __future__ import annotations

from kubernetes import client, config

#: (connect, read) seconds for ordinary requests: a dead API server never hangs a reconcile.
REQUEST_TIMEOUT = (3.0, 15.0)

#: A kubeconfig that cannot be loaded (callers name it without importing the client).
KubeconfigError = config.ConfigException


def kubeconfig_user(kubeconfig: str | None) -> str | None:
    """The user of the kubeconfig's current context, or None when there is none."""
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
    except Exception:  # no kubeconfig (in a pod)
        return None
    user = ((active or {}).get("context") or {}).get("user")
    return str(user) if user else None


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(context=context, client_configuration=configuration)
    return client.ApiClient(configuration)
