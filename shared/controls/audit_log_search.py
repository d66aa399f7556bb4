"""audit-log-search: unified audit log ingestion on, read on the Exchange endpoint (never Security & Compliance)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.base import Control, ReportWording, compliance_frameworks, powershell_bool
from shared.controls.org_audit_enabled import INDEPENDENT_SWITCHES
from shared.controls.org_config import OrgConfig, read_org_config
from shared.controls.plans import AUDIT_LOG_ANCHOR, switch_plan
from shared.controls.reading import MISSING, RunContext, single_row
from shared.exchange.errors import ExchangeError
from shared.model import Action, ControlResult, Status

ID = "audit-log-search"
EXPECTED = "UnifiedAuditLogIngestionEnabled = True"
ADMIN_AUDIT_LOG_FIELDS = ("UnifiedAuditLogIngestionEnabled", "AdminAuditLogEnabled", "AdminAuditLogAgeLimit")


@dataclass(frozen=True)
class AdminAuditLogConfig:
    """`Get-AdminAuditLogConfig` on the Exchange host, plus the dehydration flag remediation needs."""

    ual_enabled: Any
    admin_enabled: Any
    admin_age_limit: str | None
    is_dehydrated: Any
    name: str | None = None


def read_admin_audit_log_config(context: RunContext) -> AdminAuditLogConfig:
    row = single_row(
        context.client.invoke("Get-AdminAuditLogConfig", select=ADMIN_AUDIT_LOG_FIELDS).rows, "Get-AdminAuditLogConfig"
    )
    try:  # only the fix needs IsDehydrated: an unreadable org config must not make the UAL flag unknown
        org: OrgConfig | None = read_org_config(context)
    except ExchangeError:
        org = None
    age = row.get("AdminAuditLogAgeLimit")
    return AdminAuditLogConfig(
        ual_enabled=row.get("UnifiedAuditLogIngestionEnabled", MISSING),
        admin_enabled=row.get("AdminAuditLogEnabled"),
        admin_age_limit=age if isinstance(age, str) else None,
        is_dehydrated=org.is_dehydrated if org else None,
        name=org.name if org else None,
    )


def evaluate_audit_log_search(config: AdminAuditLogConfig, policy: AuditPolicy | None = None) -> ControlResult:
    """`UnifiedAuditLogIngestionEnabled` true (read on the Exchange host, never on Security & Compliance)."""
    details = {
        "UnifiedAuditLogIngestionEnabled": config.ual_enabled if isinstance(config.ual_enabled, bool) else None,
        "AdminAuditLogEnabled": config.admin_enabled if isinstance(config.admin_enabled, bool) else None,
        "AdminAuditLogAgeLimit": config.admin_age_limit,
    }
    value = config.ual_enabled
    if not isinstance(value, bool):
        return ControlResult(
            ID,
            Status.ERROR,
            EXPECTED,
            "missing" if value is MISSING else f"UnifiedAuditLogIngestionEnabled = {value!r}",
            "UnifiedAuditLogIngestionEnabled is missing or not a boolean; compliance is unknown.",
            details,
        )
    actual = f"UnifiedAuditLogIngestionEnabled = {powershell_bool(value)}"
    separate = "Audit log ingestion and audit-by-default (org-audit-enabled) are independent switches; both must be on."
    if not value:
        return ControlResult(
            ID,
            Status.NON_COMPLIANT,
            EXPECTED,
            actual,
            "Audit log search is OFF: audit records are not ingested or searchable, and the "
            "Management Activity API returns nothing. Fix: Set-AdminAuditLogConfig "
            f"-UnifiedAuditLogIngestionEnabled $true. {separate}",
            details,
        )
    return ControlResult(
        ID,
        Status.COMPLIANT,
        EXPECTED,
        actual,
        "Audit log ingestion is on (read on the Exchange endpoint; the Security & Compliance "
        f"endpoint always shows False). {separate}",
        details,
    )


def plan_audit_log_search_fix(config: AdminAuditLogConfig, policy: AuditPolicy | None = None) -> list[Action]:
    """Enable UAL ingestion, with the audit-log anchor mailbox (without it, enabling fails: "Cmdlet needs proxy")."""
    return switch_plan(
        config.ual_enabled,
        True,
        config.is_dehydrated,
        "Set-AdminAuditLogConfig",
        "UnifiedAuditLogIngestionEnabled",
        AUDIT_LOG_ANCHOR,
    )


def plan_audit_log_search_revert(config: AdminAuditLogConfig, policy: AuditPolicy | None = None) -> list[Action]:
    return switch_plan(
        config.ual_enabled,
        False,
        config.is_dehydrated,
        "Set-AdminAuditLogConfig",
        "UnifiedAuditLogIngestionEnabled",
        AUDIT_LOG_ANCHOR,
    )


CONTROL = Control(
    id=ID,
    title="Unified audit log ingestion (audit log search) on",
    question="Is the unified audit log ingesting (Get-AdminAuditLogConfig on the Exchange endpoint)?",
    expected=EXPECTED,
    remediation="Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled $true (audit-log anchor mailbox)",
    frameworks=compliance_frameworks("3.1.1", "3.1.1", "MS.SECURITYSUITE.5.1v1"),
    read=read_admin_audit_log_config,
    evaluate=evaluate_audit_log_search,
    plan_fix=plan_audit_log_search_fix,
    plan_revert=plan_audit_log_search_revert,
    wording=ReportWording(
        note=INDEPENDENT_SWITCHES + " The value is read on the Exchange Online endpoint; the Security & "
        "Compliance endpoint always reports False.",
        summary_note=INDEPENDENT_SWITCHES,
        fact_labels={
            "UnifiedAuditLogIngestionEnabled": "UnifiedAuditLogIngestionEnabled (audit log search)",
            "AdminAuditLogEnabled": "AdminAuditLogEnabled (context only; CIS does not require it)",
            "AdminAuditLogAgeLimit": "AdminAuditLogAgeLimit (context only)",
        },
    ),
)
