"""Review workflow: hash-chained trail, exceptions with expiry, API tokens and roles."""
