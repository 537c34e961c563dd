"""Bundled compliance data: chip catalog and jurisdiction lists (YAML)."""
