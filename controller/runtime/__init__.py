"""The operator runtime: informers, work queue, reconcile loop, leader election."""
