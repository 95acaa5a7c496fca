"""Tests of ``monitoring/``: Prometheus config, alert rules, Grafana dashboards."""
