"""What the agent measures on the gateway and sends to the fleet server."""
