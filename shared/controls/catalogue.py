"""The control catalogue, as data: stable ids, titles, expected values, framework mappings.

The ids appear in telemetry, alert queries and evidence reports: never rename one, add a new id instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Control:
    """One auditable setting and where it sits in the frameworks auditors ask about."""

    id: str
    title: str
    question: str
    expected: str
    remediation: str
    frameworks: dict[str, str]

    @property
    def frameworks_compact(self) -> str:
        """The `frameworks` telemetry dimension, e.g. `CIS-v7:6.1.1;CIS-v4:6.1.1;...`."""
        return ";".join(f"{name}:{ref}" for name, ref in self.frameworks.items())


LOGON_TYPES = ("Admin", "Delegate", "Owner")


def _frameworks(cis_v7: str, cis_v4: str, cisa: str | None) -> dict[str, str]:
    mapping = {"CIS-v7": cis_v7, "CIS-v4": cis_v4}
    if cisa:
        mapping["CISA"] = cisa
    # Every audit control serves the same logging clauses (controls.md §2).
    mapping |= {"ISO27001-2022": "A.8.15", "ISO27001-2013": "A.12.4.1", "BIO": "12.4.1", "NIS2": "21", "AVG": "32"}
    return mapping


ORG_AUDIT_ENABLED = Control(
    id="org-audit-enabled",
    title="Mailbox auditing on by default for the organisation",
    question="Is audit-by-default on for the organisation (Get-OrganizationConfig AuditDisabled)?",
    expected="AuditDisabled = False",
    remediation="Set-OrganizationConfig -AuditDisabled $false",
    frameworks=_frameworks("6.1.1", "6.1.1", "MS.EXO.13.1v1"),
)

AUDIT_LOG_SEARCH = Control(
    id="audit-log-search",
    title="Unified audit log ingestion (audit log search) on",
    question="Is the unified audit log ingesting (Get-AdminAuditLogConfig on the Exchange endpoint)?",
    expected="UnifiedAuditLogIngestionEnabled = True",
    remediation="Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled $true (audit-log anchor mailbox)",
    frameworks=_frameworks("3.1.1", "3.1.1", "MS.SECURITYSUITE.5.1v1"),
)

AUDIT_BYPASS = Control(
    id="audit-bypass",
    title="No mailbox audit bypass without a written exception",
    question="Is any account exempt from mailbox auditing (Get-MailboxAuditBypassAssociation)?",
    expected="no AuditBypassEnabled = True without a written exception",
    remediation="Set-MailboxAuditBypassAssociation -Identity <Guid> -AuditBypassEnabled $false",
    frameworks=_frameworks("6.1.3", "6.1.4", None),
)

MAILBOX_AUDIT_ACTIONS = Control(
    id="mailbox-audit-actions",
    title="User mailboxes audit the required actions",
    question="Do user mailboxes audit the baseline's Admin, Delegate and Owner actions?",
    expected="AuditEnabled True and every baseline action audited",
    remediation="Set-Mailbox -Identity <id> -AuditAdmin/-AuditDelegate/-AuditOwner @{Add=<missing>}",
    frameworks=_frameworks("6.1.2", "6.1.2 (E3) / 6.1.3 (E5)", None),
)

MAILBOX_AUDIT_RETENTION = Control(
    id="mailbox-audit-retention",
    title="Mailboxes keep their audit records long enough",
    question="Is every user and shared mailbox's AuditLogAgeLimit at least the configured minimum?",
    expected="AuditLogAgeLimit >= the minimum (MAILBOX_AUDIT_MIN_RETENTION_DAYS), never 00:00:00",
    remediation="Set-Mailbox -Identity <id> -AuditLogAgeLimit <minimum>",
    frameworks=_frameworks("6.1.2 (remediation)", "6.1.2 / 6.1.3 (remediation)", "MS.SECURITYSUITE.5.2v1 (related)"),
)

CATALOGUE: dict[str, Control] = {control.id: control for control in (
    ORG_AUDIT_ENABLED, AUDIT_LOG_SEARCH, AUDIT_BYPASS, MAILBOX_AUDIT_ACTIONS, MAILBOX_AUDIT_RETENTION)}

# Required audit actions per logon type (controls.md §6.3). Superset check: extra actions are fine.
_CIS_V5_ACTIONS: dict[str, frozenset[str]] = {
    "Admin": frozenset({"ApplyRecord", "Copy", "Create", "FolderBind", "HardDelete", "MailItemsAccessed", "Move",
                        "MoveToDeletedItems", "Send", "SendAs", "SendOnBehalf", "SoftDelete", "Update",
                        "UpdateCalendarDelegation", "UpdateFolderPermissions", "UpdateInboxRules"}),
    "Delegate": frozenset({"ApplyRecord", "Create", "FolderBind", "HardDelete", "MailItemsAccessed", "Move",
                           "MoveToDeletedItems", "SendAs", "SendOnBehalf", "SoftDelete", "Update",
                           "UpdateFolderPermissions", "UpdateInboxRules"}),
    "Owner": frozenset({"ApplyRecord", "Create", "HardDelete", "MailboxLogin", "MailItemsAccessed", "Move",
                        "MoveToDeletedItems", "Send", "SoftDelete", "Update", "UpdateCalendarDelegation",
                        "UpdateFolderPermissions", "UpdateInboxRules"}),
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
