"""Realistic evidence documents: built by run_document from RunReports, plus the issue-5 details."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.evidence.document import run_document
from shared.model import ControlResult, Outcome, RemediationResult, RunReport, Status
from tests.support.tenant import TENANT_ID

# Untrusted text as Exchange might hand it back: markup, quotes, Markdown table syntax, a newline.
HOSTILE = '<script>alert("pwned")</script> O\'Brien | "Bob" & <b>co</b>\nsecond | line'
HOSTILE_UPN = 'o\'brien+"x"@contoso.com'
LICENCE_ERROR = (
    "licence: Auditing of MailItemsAccessed event is only available for users with appropriate license "
    "<img src=x onerror=alert(1)>"
)
STARTED = datetime(2026, 11, 28, 6, 0, 1, 250000, tzinfo=UTC)
ORG = "contoso.onmicrosoft.com"

# controls.md §2, for a catalogue that does not carry the mapping (yet).
FRAMEWORKS = {
    "org-audit-enabled": ("6.1.1", "6.1.1", "MS.EXO.13.1v1"),
    "audit-log-search": ("3.1.1", "3.1.1", "MS.SECURITYSUITE.5.1v1"),
    "audit-bypass": ("6.1.3", "6.1.4", None),
    "mailbox-audit-actions": ("6.1.2", "6.1.2 (E3) / 6.1.3 (E5)", None),
    "mailbox-audit-retention": ("6.1.2 (remediation)", "6.1.2 / 6.1.3 (remediation)", "MS.SECURITYSUITE.5.2v1"),
}
MANY = 620  # more than the report's 500-row cap
MISSING_V5 = {
    "Admin": ["Copy", "FolderBind", "Move"],
    "Delegate": ["FolderBind", "Move"],
    "Owner": ["Create", "MailboxLogin", "Move"],
}


def _mappings(control_id: str) -> dict[str, str]:
    cis_v7, cis_v4, cisa = FRAMEWORKS[control_id]
    mapping = {"CIS-v7": cis_v7, "CIS-v4": cis_v4} | ({"CISA": cisa} if cisa else {})
    return mapping | {
        "ISO27001-2022": "A.8.15",
        "ISO27001-2013": "A.12.4.1",
        "BIO": "12.4.1",
        "NIS2": "21",
        "AVG": "32",
    }


def org_result(disabled: bool = False) -> ControlResult:
    status = Status.NON_COMPLIANT if disabled else Status.COMPLIANT
    return ControlResult(
        "org-audit-enabled",
        status,
        "AuditDisabled = False",
        f"AuditDisabled = {disabled}",
        "Audit-by-default is on for the organisation. Audit-by-default and unified audit log "
        "ingestion are independent switches.",
        {"organization": ORG, "is_dehydrated": False},
    )


def ual_result(enabled: bool | None) -> ControlResult:
    status = {True: Status.COMPLIANT, False: Status.NON_COMPLIANT, None: Status.ERROR}[enabled]
    return ControlResult(
        "audit-log-search",
        status,
        "UnifiedAuditLogIngestionEnabled = True",
        f"UnifiedAuditLogIngestionEnabled = {enabled}",
        "Audit log search is OFF: mailbox audit records are not searchable. Fix: "
        "Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled $true."
        if enabled is False
        else "Unified audit log ingestion is on.",
        {
            "UnifiedAuditLogIngestionEnabled": enabled,
            "AdminAuditLogEnabled": True,
            "AdminAuditLogAgeLimit": "90.00:00:00",
        },
    )


def bypass_result(findings: int = 2) -> ControlResult:
    rows = [
        {
            "identity": f"svc-backup-{n}@contoso.com",
            "name": f"svc-backup-{n}",
            "guid": f"5e1c0a2b-0000-4000-8000-{n:012d}",
        }
        for n in range(findings - 1)
    ]
    rows.append({"identity": HOSTILE, "name": HOSTILE, "guid": "5e1c0a2b-0000-4000-8000-ffffffffffff"})
    return ControlResult(
        "audit-bypass",
        Status.NON_COMPLIANT,
        "no AuditBypassEnabled = True without a written exception",
        f"{findings} bypass association(s) without a valid exception",
        f"{findings} accounts are exempt from mailbox auditing without a valid written exception.",
        {
            "associations_total": 1204,
            "bypass_enabled": findings + 1,
            "findings": rows,
            "exceptions_used": [
                {
                    "identity": "journaling@contoso.com",
                    "reason": "Vendor journaling | archive",
                    "approved_by": "CISO (change 4711)",
                    "expires": "2027-03-31",
                }
            ],
            "exceptions_rejected": [
                {
                    "entry": {
                        "control": "audit-bypass",
                        "identity": "old-scanner@contoso.com",
                        "reason": "legacy",
                        "approved_by": "IT",
                        "expires": "2025-01-31",
                    },
                    "problem": "expired on 2025-01-31",
                },
                {"entry": {"control": "audit-bypass", "identity": HOSTILE}, "problem": "missing reason, approved_by"},
            ],
        },
    )


def actions_result(count: int = MANY) -> ControlResult:
    rows: list[dict[str, Any]] = [
        {
            "identity": HOSTILE,
            "upn": HOSTILE_UPN,
            "type": "UserMailbox",
            "audit_enabled": None,
            "missing": {"Admin": ["MailItemsAccessed"], "Delegate": [], "Owner": ["Send"]},
            "frozen": ["Owner"],
            "premium": False,
            "report_only": False,
        },
        {
            "identity": "Team Sales",
            "upn": "sales@contoso.com",
            "type": "SharedMailbox",
            "audit_enabled": True,
            "missing": MISSING_V5,
            "frozen": [],
            "premium": False,
            "report_only": True,
        },
    ]
    rows += [
        {
            "identity": f"User {n:05d}",
            "upn": f"user{n:05d}@contoso.com",
            "type": "UserMailbox",
            "audit_enabled": True,
            "missing": MISSING_V5,
            "frozen": ["Admin", "Delegate", "Owner"] if n % 3 else [],
            "premium": n % 7 == 0,
            "report_only": False,
        }
        for n in range(count - len(rows))
    ]
    return ControlResult(
        "mailbox-audit-actions",
        Status.NON_COMPLIANT,
        "AuditEnabled True and every baseline action audited",
        f"{count} of 25000 mailboxes miss required actions",
        f"{count} mailboxes do not audit every action the cis baseline requires.",
        {
            "baseline": "cis",
            "mailboxes_scanned": 25000,
            "mailboxes_noncompliant": count,
            "not_explicitly_enabled": 312,
            "findings": rows,
            "warnings": [f"Mailbox {HOSTILE} answered slowly"],
        },
    )


def retention_result() -> ControlResult:
    return ControlResult(
        "mailbox-audit-retention",
        Status.NON_COMPLIANT,
        "AuditLogAgeLimit >= 90 days, never 00:00:00",
        "2 mailboxes below 90 days (1 at zero)",
        "AuditLogAgeLimit 00:00:00 on 1 mailbox: possible tampering.",
        {
            "minimum_days": 90,
            "mailboxes_scanned": 25040,
            "findings": [
                {
                    "identity": "ceo@contoso.com",
                    "upn": "ceo@contoso.com",
                    "type": "UserMailbox",
                    "age_limit": "00:00:00",
                    "days": 0.0,
                    "tampering": True,
                },
                {
                    "identity": "Team Sales",
                    "upn": "sales@contoso.com",
                    "type": "SharedMailbox",
                    "age_limit": "30.00:00:00",
                    "days": 30.0,
                    "tampering": False,
                },
                {
                    "identity": HOSTILE,
                    "upn": HOSTILE_UPN,
                    "type": "UserMailbox",
                    "age_limit": "garbage",
                    "days": None,
                    "tampering": False,
                },
            ],
        },
    )


def _complete(document: dict[str, Any]) -> dict[str, Any]:
    """Fill in what an older catalogue may not carry yet (titles, mappings), as the finished catalogue will."""
    for control in document["controls"]:
        control["frameworks"] = control["frameworks"] or _mappings(control["id"])
        control["title"] = control["title"] or control["id"].replace("-", " ").capitalize()
    return document


def check_document() -> dict[str, Any]:
    """The daily timer's check: every kind of finding, hostile names, a list longer than the cap."""
    report = RunReport(
        command="check",
        tenant_id=TENANT_ID,
        trigger="timer",
        organization=ORG,
        run_id="7d0f8a52-3c1e-4b6a-9f11-0a1b2c3d4e5f",
        started_at=STARTED,
    )
    report.controls = [org_result(), ual_result(False), bypass_result(), actions_result(), retention_result()]
    report.finished_at = STARTED + timedelta(seconds=41.7)
    report.requests_sent = 57
    document = run_document(report, report.status.exit_code)
    document["warnings"] = ["Asc-2X1 system objects were skipped (CIS v7 note)", HOSTILE]
    return _complete(document)


def remediate_document() -> dict[str, Any]:
    """An HTTP remediation: applied, already compliant, a partial failure with a licence error."""
    report = RunReport(
        command="remediate",
        tenant_id=TENANT_ID,
        trigger="http",
        organization=ORG,
        run_id="c0ffee00-1234-4abc-8def-001122334455",
        started_at=STARTED,
        dry_run=False,
        caller="Admin 'Alice' <alice@contoso.com> (oid 9a8b7c6d)",
    )
    before_ual, after_ual = ual_result(False), ual_result(True)
    before_actions, after_actions = actions_result(40), actions_result(1)
    report.remediation = [
        RemediationResult(
            "org-audit-enabled",
            "Set-OrganizationConfig -AuditDisabled $false",
            Outcome.ALREADY_COMPLIANT,
            org_result(),
            None,
            "Already compliant: nothing written.",
        ),
        RemediationResult(
            "audit-log-search",
            "Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled $true",
            Outcome.APPLIED,
            before_ual,
            after_ual,
            "Applied and verified by reading back.",
            writes=[
                "Enable-OrganizationCustomization",
                "Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled $true",
            ],
            warnings=["The command completed successfully but no settings of 'x' have been modified."],
        ),
        RemediationResult(
            "mailbox-audit-actions",
            "Set-Mailbox -AuditAdmin/-AuditDelegate/-AuditOwner @{Add=...}",
            Outcome.FAILED,
            before_actions,
            after_actions,
            "39 of 40 mailboxes fixed; 1 failed.",
            writes=[f"Set-Mailbox -Identity user{n:05d}@contoso.com" for n in range(39)],
            warnings=[LICENCE_ERROR],
        ),
    ]
    report.controls = [org_result(), after_ual, after_actions]
    report.finished_at = STARTED + timedelta(seconds=95)
    report.requests_sent = 131
    document = run_document(report, report.status.exit_code)
    document["remediation"][2]["details"] = {
        "mailboxes_fixed": 39,
        "mailboxes_failed": [{"identity": HOSTILE, "reason": LICENCE_ERROR}],
    }
    return _complete(document)


def activity_document() -> dict[str, Any]:
    """The daily check with the activity watch's section, built by the real summary over a real SQLite state:
    a pass with an error, a gap, a blob waiting for a retry, hostile text in alerts."""
    import tempfile
    from pathlib import Path

    from shared.activity import history
    from shared.activity.detections.base import Alert
    from shared.activity.sqlite_store import SqliteStateStore
    from shared.activity.state import Gap

    now = STARTED
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStateStore(Path(folder) / "watch.sqlite3")
        try:
            alerts = [
                Alert(
                    id=f"mail-forwarding:{index:024x}",
                    detection="mail-forwarding" if index % 2 else "audit-tampering",
                    severity="high" if index % 2 else "medium",
                    time=now - timedelta(hours=index),
                    actor=HOSTILE_UPN if index == 3 else f"user{index}@contoso.com",
                    mailbox=None if index == 4 else "ann@contoso.com",
                    operation="Set-Mailbox",
                    client_ip="[2a01:111:f400::1]:443" if index == 2 else "81.2.69.142",
                    country=None if index == 2 else "GB",
                    record_ids=(f"rec-{index}",),
                    message=HOSTILE if index == 3 else f"Forwarding to outside the tenant ({index})",
                )
                for index in range(8)
            ]
            history.record_alerts(store, TENANT_ID, alerts, now - timedelta(hours=1))
            history.record_pass(
                store,
                TENANT_ID,
                {"status": "Error", "error": "the feed answered 503", "records_processed": 12, "feed_lag_minutes": 31},
                now - timedelta(minutes=4),
            )
            store.set_checkpoint(TENANT_ID, "Audit.Exchange", now - timedelta(minutes=20))
            store.record_failure(
                TENANT_ID,
                "Audit.Exchange",
                "blob$1",
                now - timedelta(hours=2),
                "HTTP 500 <b>",
                now - timedelta(hours=1),
            )
            store.add_gap(
                TENANT_ID,
                Gap(
                    "Audit.Exchange",
                    "outage-beyond-retention",
                    now - timedelta(days=9),
                    now - timedelta(days=8),
                    "",
                    now,
                ),
            )
            section = history.summary(
                store, TENANT_ID, ("Audit.Exchange", "Audit.AzureActiveDirectory"), now, source="watch.sqlite3"
            )
        finally:
            store.close()
    document = check_document()
    document["activity"] = section
    return document
