"""Bundled data files of the Kubernetes provider (label -> chip id tables)."""
