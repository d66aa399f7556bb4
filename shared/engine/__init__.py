"""Runs controls for one tenant: check, remediate (write, read back) and revert."""
