"""Mailbox Audit Guard: keeps Exchange Online mailbox auditing switched on, proves it, fixes it."""

__version__ = "0.1.0"
