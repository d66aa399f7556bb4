"""The audit actions each baseline requires per logon type (controls.md §6.3). Pure data.

Used by the mailbox scan (to judge each mailbox) and by the mailbox-audit-actions plans.
"""

from __future__ import annotations

LOGON_TYPES = ("Admin", "Delegate", "Owner")

# Required audit actions per logon type (controls.md §6.3). Superset check: extra actions are fine.
_CIS_V5_ACTIONS: dict[str, frozenset[str]] = {
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
            "Send",
            "SoftDelete",
            "Update",
            "UpdateCalendarDelegation",
            "UpdateFolderPermissions",
            "UpdateInboxRules",
        }
    ),
}
_CIS_V4_E3_ACTIONS: dict[str, frozenset[str]] = {
    "Admin": _CIS_V5_ACTIONS["Admin"] - {"MailItemsAccessed", "Send"},
    "Delegate": _CIS_V5_ACTIONS["Delegate"] - {"MailItemsAccessed"},
    "Owner": _CIS_V5_ACTIONS["Owner"] - {"MailItemsAccessed", "Send"},
}

PREMIUM_CAPABILITY = "M365Auditing"  # PersistedCapabilities marker of Audit Premium (E5-level) mailboxes


def required_actions(baseline: str, premium: bool) -> dict[str, frozenset[str]]:
    """The action lists a mailbox must audit under a baseline; `cis-v4` picks E3 or E5 by the mailbox's licence.

    `microsoft-default` requires no list: it is judged on DefaultAuditSet instead.
    """
    if baseline == "cis":
        return _CIS_V5_ACTIONS
    if baseline == "cis-v4":
        return _CIS_V5_ACTIONS if premium else _CIS_V4_E3_ACTIONS
    return {}
