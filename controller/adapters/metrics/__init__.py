"""The Metrics port: Prometheus queries for the analysis judges, and a loopback Prometheus
harness (``prometheus_process``) for tests and the demo."""

from controller.adapters.metrics.analyzer import PrometheusAnalyzer, release_params
from controller.adapters.metrics.prometheus import PrometheusMetrics

__all__ = ["PrometheusAnalyzer", "PrometheusMetrics", "release_params"]
