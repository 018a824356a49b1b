"""The embedded demo: simulated cluster, controller, simulated workload, Prometheus."""
