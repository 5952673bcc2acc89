"""An example reid-bench plugin distribution (see README.md next to pyproject.toml)."""
