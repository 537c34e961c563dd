"""Benchmarks (see bench/README.md); run from the repository root with ``python -m bench.run``."""
