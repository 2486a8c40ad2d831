"""Gateway updates: TUF client, resumable downloads, A/B install, health check, rollback."""
