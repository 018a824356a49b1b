"""The simulated cluster: an in-memory subset of the Kubernetes API served over HTTP."""
