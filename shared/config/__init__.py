"""Settings: every environment variable, parsed and validated once per run. Pure (reads a mapping, no I/O)."""
