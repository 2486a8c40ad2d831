"""What runs on the gateway: the boot chain, identity, attestation (and later the agent)."""
