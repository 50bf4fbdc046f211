"""The `restyle` command (console script in pyproject.toml; also `python -m tools.cli`)."""
