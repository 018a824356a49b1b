"""The operator runtime: work queue, workers and the reconcile loop, on the ports of
``runtime/ports.py`` (informers, leader election and the cluster come through them)."""
