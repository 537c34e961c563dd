"""Static, file-based inputs: a CSV inventory of hosts the clouds cannot list."""
