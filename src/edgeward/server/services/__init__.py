"""Domain services: what the API routes call. Each takes a session and a principal."""
