"""Microsoft Graph: the client and `grant-permissions`."""
