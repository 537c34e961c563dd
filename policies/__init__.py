"""What is judged and how: the policy engine, bundled packs and compliance data."""
