"""Bundled data for the GCP provider (machine-type catalog, ISO 3166 alpha-3 table)."""
