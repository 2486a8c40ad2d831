"""The fleet server: registry, attestation, TUF repository, rollouts, secrets,
telemetry, alerts and the dashboard. Imports trust/, never device/."""
