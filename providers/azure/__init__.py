"""Azure provider: GPU VM inventory and remote-access sessions (see docs/azure.md)."""
