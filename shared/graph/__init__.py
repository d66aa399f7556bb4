"""Microsoft Graph: the client, and `grant-permissions`' plan (grant_plan), work (grant) and output (grant_render)."""
