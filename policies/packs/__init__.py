"""Bundled policy packs (``builtin:<name>`` refers to ``<name>.yaml`` here)."""
