"""Bundled sample data for ``chipwarden audit --sample`` (see README.md here)."""
