"""Service graphs from Prometheus and links into logs and dashboards."""
