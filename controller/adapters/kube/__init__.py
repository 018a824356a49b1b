"""The ``Cluster`` and ``ClusterConnection`` ports on the official ``kubernetes`` client:
operations, ``SharedInformer`` informers and ``LeaseLock`` leader election."""
