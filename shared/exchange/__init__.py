"""The Exchange Online admin REST endpoint (`InvokeCommand`): client, retry policy, typed errors, app-only tokens."""
