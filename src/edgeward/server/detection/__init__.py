"""Anomaly detection on the fleet server: pure models fed by ingested telemetry."""
