"""The investigation search: query the unified audit log through Microsoft Graph and export it for forensics."""
