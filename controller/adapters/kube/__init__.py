"""The ``Cluster`` port on the official ``kubernetes`` client."""
