"""Thin adapters (ports) between the pure core and the outside world."""
