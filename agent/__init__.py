"""chipwarden runtime: models, ports, pipeline, enrichment, store and CLI."""
