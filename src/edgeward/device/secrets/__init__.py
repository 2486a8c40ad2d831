"""Secrets on the gateway: delivered sealed by the fleet server, or made here per device,
kept in the app's own encrypted folder and shown only inside its sandbox."""
