"""Release tooling: building and signing OS images (and, later, TUF publishing)."""
