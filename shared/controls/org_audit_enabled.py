"""org-audit-enabled: mailbox auditing on by default for the whole organisation (AuditDisabled false)."""

from __future__ import annotations

from shared.config.settings import AuditPolicy
from shared.controls.base import Control, ReportWording, compliance_frameworks, powershell_bool
from shared.controls.org_config import OrgConfig, read_org_config
from shared.controls.plans import switch_plan
from shared.model import Action, ControlResult, Status

ID = "org-audit-enabled"
EXPECTED = "AuditDisabled = False"
UAL_IS_SEPARATE = (
    "Audit-by-default and unified audit log ingestion are independent switches: this result says "
    "nothing about whether audit records are searchable (see audit-log-search)."
)
# Shown beside both organisation-wide switches in the evidence report.
INDEPENDENT_SWITCHES = (
    "org-audit-enabled (audit-by-default) and audit-log-search (unified audit log ingestion) are independent "
    "switches: a Compliant result for one says nothing about the other. Audit records are searchable only while "
    "audit-log-search is Compliant."
)


def evaluate_org_audit(config: OrgConfig, policy: AuditPolicy | None = None) -> ControlResult:
    """`AuditDisabled` false is Compliant, true NonCompliant; missing or not a boolean is an Error."""
    details = {
        "organization": config.name,
        "is_dehydrated": config.is_dehydrated if isinstance(config.is_dehydrated, bool) else None,
    }
    if not config.audit_disabled_present:
        return ControlResult(
            ID,
            Status.ERROR,
            EXPECTED,
            "missing",
            "Get-OrganizationConfig answered without AuditDisabled; compliance is unknown.",
            details,
        )
    value = config.audit_disabled
    actual = f"AuditDisabled = {powershell_bool(value)}"
    if not isinstance(value, bool):
        return ControlResult(
            ID, Status.ERROR, EXPECTED, actual, "AuditDisabled is not a boolean; compliance is unknown.", details
        )
    if value:
        return ControlResult(
            ID,
            Status.NON_COMPLIANT,
            EXPECTED,
            actual,
            "Mailbox auditing is OFF for the whole organisation: no mailbox action is audited, whatever each "
            "mailbox's AuditEnabled says. Fix: Set-OrganizationConfig -AuditDisabled $false. " + UAL_IS_SEPARATE,
            details,
        )
    return ControlResult(
        ID,
        Status.COMPLIANT,
        EXPECTED,
        actual,
        "Audit-by-default is on for the organisation. " + UAL_IS_SEPARATE,
        details,
    )


def plan_org_audit_fix(config: OrgConfig, policy: AuditPolicy | None = None) -> list[Action]:
    """Turn audit-by-default on."""
    return switch_plan(config.audit_disabled, False, config.is_dehydrated, "Set-OrganizationConfig", "AuditDisabled")


def plan_org_audit_revert(config: OrgConfig, policy: AuditPolicy | None = None) -> list[Action]:
    """The original script's -Revert: switch audit-by-default OFF. Dangerous; callers guard it."""
    return switch_plan(config.audit_disabled, True, config.is_dehydrated, "Set-OrganizationConfig", "AuditDisabled")


CONTROL = Control(
    id=ID,
    title="Mailbox auditing on by default for the organisation",
    question="Is audit-by-default on for the organisation (Get-OrganizationConfig AuditDisabled)?",
    expected=EXPECTED,
    remediation="Set-OrganizationConfig -AuditDisabled $false",
    frameworks=compliance_frameworks("6.1.1", "6.1.1", "MS.EXO.13.1v1"),
    read=read_org_config,
    evaluate=evaluate_org_audit,
    plan_fix=plan_org_audit_fix,
    plan_revert=plan_org_audit_revert,
    wording=ReportWording(
        note=INDEPENDENT_SWITCHES,
        summary_note=INDEPENDENT_SWITCHES,
        fact_labels={"organization": "Organisation", "is_dehydrated": "Dehydrated tenant (IsDehydrated)"},
    ),
)
