"""changelane: an autonomous change-lane deployment controller for Kubernetes.

Layout (the folder layout is the architecture diagram):

- ``controller.core``: the pure decision core (models, release state machine, gates,
  judges, statistics). No I/O, no Kubernetes/Prometheus/OpenFeature imports.
- ``controller.adapters``: thin ports to the outside world (Kubernetes, Prometheus,
  OpenFeature, audit sink).
- ``controller.runtime``: informers, work queue, reconcile loop, leader election.
- ``controller.sim``: the simulated cluster (a faithful subset of the Kubernetes API).
- ``controller.cli``: the ``changelane`` command.
"""

__version__ = "0.1.0"
