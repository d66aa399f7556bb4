"""`diagnose`: check every assumption about the real Exchange admin API against the configured tenant."""
