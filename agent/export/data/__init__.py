"""Data files of the exporters (country centres for the world map)."""
