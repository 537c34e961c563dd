"""Where data comes from: one sub-package per cloud or log source."""
