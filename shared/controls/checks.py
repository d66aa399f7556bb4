"""Pure evaluation: from a collected snapshot to a verdict. No I/O, so every rule is unit-testable."""

from __future__ import annotations

from typing import Any

from shared.controls.catalogue import AUDIT_LOG_SEARCH, CATALOGUE, ORG_AUDIT_ENABLED
from shared.controls.collect import MISSING, AdminAuditLogConfig, OrgConfig
from shared.model import ControlResult, Status

UAL_IS_SEPARATE = ("Audit-by-default and unified audit log ingestion are independent switches: this result says "
                   "nothing about whether audit records are searchable (see audit-log-search).")


def powershell_bool(value: Any) -> str:
    """Show a value the way an Exchange administrator reads it in PowerShell."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return repr(value)


def error_result(control_id: str, reason: str) -> ControlResult:
    """Fail closed: a control whose value could not be read is an Error, never Compliant."""
    control = CATALOGUE[control_id]
    return ControlResult(control_id, Status.ERROR, control.expected, "unreadable",
                         f"Could not read the value, so compliance is unknown: {reason}")


def evaluate_org_audit(config: OrgConfig) -> ControlResult:
    """`AuditDisabled` false is Compliant, true NonCompliant; missing or not a boolean is an Error."""
    control = ORG_AUDIT_ENABLED
    details = {"organization": config.name, "is_dehydrated": config.is_dehydrated
               if isinstance(config.is_dehydrated, bool) else None}
    if not config.audit_disabled_present:
        return ControlResult(control.id, Status.ERROR, control.expected, "missing",
                             "Get-OrganizationConfig answered without AuditDisabled; compliance is unknown.", details)
    value = config.audit_disabled
    actual = f"AuditDisabled = {powershell_bool(value)}"
    if not isinstance(value, bool):
        return ControlResult(control.id, Status.ERROR, control.expected, actual,
                             "AuditDisabled is not a boolean; compliance is unknown.", details)
    if value:
        return ControlResult(
            control.id, Status.NON_COMPLIANT, control.expected, actual,
            "Mailbox auditing is OFF for the whole organisation: no mailbox action is audited, whatever each "
            "mailbox's AuditEnabled says. Fix: Set-OrganizationConfig -AuditDisabled $false. " + UAL_IS_SEPARATE,
            details)
    return ControlResult(control.id, Status.COMPLIANT, control.expected, actual,
                         "Audit-by-default is on for the organisation. " + UAL_IS_SEPARATE, details)


def evaluate_audit_log_search(config: AdminAuditLogConfig) -> ControlResult:
    """`UnifiedAuditLogIngestionEnabled` true (read on the Exchange host, never on Security & Compliance)."""
    control = AUDIT_LOG_SEARCH
    details = {"UnifiedAuditLogIngestionEnabled": config.ual_enabled if isinstance(config.ual_enabled, bool)
               else None,
               "AdminAuditLogEnabled": config.admin_enabled if isinstance(config.admin_enabled, bool) else None,
               "AdminAuditLogAgeLimit": config.admin_age_limit}
    value = config.ual_enabled
    if not isinstance(value, bool):
        return ControlResult(control.id, Status.ERROR, control.expected,
                             "missing" if value is MISSING else f"UnifiedAuditLogIngestionEnabled = {value!r}",
                             "UnifiedAuditLogIngestionEnabled is missing or not a boolean; compliance is unknown.",
                             details)
    actual = f"UnifiedAuditLogIngestionEnabled = {powershell_bool(value)}"
    separate = ("Audit log ingestion and audit-by-default (org-audit-enabled) are independent switches; "
                "both must be on.")
    if not value:
        return ControlResult(control.id, Status.NON_COMPLIANT, control.expected, actual,
                             "Audit log search is OFF: audit records are not ingested or searchable, and the "
                             "Management Activity API returns nothing. Fix: Set-AdminAuditLogConfig "
                             f"-UnifiedAuditLogIngestionEnabled $true. {separate}", details)
    return ControlResult(control.id, Status.COMPLIANT, control.expected, actual,
                         "Audit log ingestion is on (read on the Exchange endpoint; the Security & Compliance "
                         f"endpoint always shows False). {separate}", details)
