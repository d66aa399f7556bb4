"""Mailbox audit action catalogue: which actions exist, which logon type accepts which, and the defaults."""

from __future__ import annotations

LOGON_TYPES: tuple[str, ...] = ("Admin", "Delegate", "Owner")

# Set-Mailbox parameter name -> logon type it configures.
LIST_PARAMETERS: dict[str, str] = {"AuditAdmin": "Admin", "AuditDelegate": "Delegate", "AuditOwner": "Owner"}

# Actions each logon type accepts (Microsoft "Manage mailbox auditing" tables). Anything in ALL_ACTIONS but not in
# a type's set is a valid enum value that the service still rejects for that type (e.g. Send for Delegate).
ALLOWED: dict[str, frozenset[str]] = {
    "Admin": frozenset(
        {
            "ApplyRecord",
            "Copy",
            "Create",
            "FolderBind",
            "HardDelete",
            "MailItemsAccessed",
            "Move",
            "MoveToDeletedItems",
            "RecordDelete",
            "Send",
            "SendAs",
            "SendOnBehalf",
            "SoftDelete",
            "Update",
            "UpdateCalendarDelegation",
            "UpdateFolderPermissions",
            "UpdateInboxRules",
        }
    ),
    "Delegate": frozenset(
        {
            "ApplyRecord",
            "Create",
            "FolderBind",
            "HardDelete",
            "MailItemsAccessed",
            "Move",
            "MoveToDeletedItems",
            "RecordDelete",
            "SendAs",
            "SendOnBehalf",
            "SoftDelete",
            "Update",
            "UpdateFolderPermissions",
            "UpdateInboxRules",
        }
    ),
    "Owner": frozenset(
        {
            "ApplyRecord",
            "Create",
            "HardDelete",
            "MailboxLogin",
            "MailItemsAccessed",
            "Move",
            "MoveToDeletedItems",
            "RecordDelete",
            "SearchQueryInitiated",
            "Send",
            "SoftDelete",
            "Update",
            "UpdateCalendarDelegation",
            "UpdateFolderPermissions",
            "UpdateInboxRules",
        }
    ),
}

# The enum order the service lists in its "valid values" error text.
ALL_ACTIONS: tuple[str, ...] = (
    "None",
    "Update",
    "Copy",
    "Move",
    "MoveToDeletedItems",
    "SoftDelete",
    "HardDelete",
    "FolderBind",
    "SendAs",
    "SendOnBehalf",
    "Create",
    "UpdateFolderPermissions",
    "UpdateInboxRules",
    "UpdateCalendarDelegation",
    "RecordDelete",
    "ApplyRecord",
    "MailItemsAccessed",
    "MailboxLogin",
    "Send",
    "SearchQueryInitiated",
)
CANONICAL: dict[str, str] = {a.lower(): a for a in ALL_ACTIONS}

# Actions that need Audit Premium (M365Auditing) when the scenario turns the licence gate on.
LICENSED: frozenset[str] = frozenset({"MailItemsAccessed", "SearchQueryInitiated"})

# controls.md §6.3 "Defaults", CIS v7 column.
V7_DEFAULTS: dict[str, tuple[str, ...]] = {
    "Admin": (
        "ApplyRecord",
        "Create",
        "HardDelete",
        "MailItemsAccessed",
        "MoveToDeletedItems",
        "Send",
        "SendAs",
        "SendOnBehalf",
        "SoftDelete",
        "Update",
        "UpdateCalendarDelegation",
        "UpdateFolderPermissions",
        "UpdateInboxRules",
    ),
    "Delegate": (
        "ApplyRecord",
        "Create",
        "HardDelete",
        "MailItemsAccessed",
        "MoveToDeletedItems",
        "SendAs",
        "SendOnBehalf",
        "SoftDelete",
        "Update",
        "UpdateFolderPermissions",
        "UpdateInboxRules",
    ),
    "Owner": (
        "ApplyRecord",
        "HardDelete",
        "MailItemsAccessed",
        "MoveToDeletedItems",
        "Send",
        "SoftDelete",
        "Update",
        "UpdateCalendarDelegation",
        "UpdateFolderPermissions",
        "UpdateInboxRules",
    ),
}
