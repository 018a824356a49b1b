"""Backtests: what a lane would have done with past releases, replayed from Prometheus
history through the controller's own judges and release machine."""
