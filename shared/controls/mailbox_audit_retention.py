"""mailbox-audit-retention: every user and shared mailbox keeps its audit records long enough.

Judged in the shared Get-Mailbox pass (`mailbox_scan`); AuditLogAgeLimit 00:00:00 is flagged as possible tampering.
"""

from __future__ import annotations

from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.base import Column, Control, ReportWording, compliance_frameworks
from shared.controls.mailbox_scan import MailboxScan, mailbox_measurements, read_mailbox_scan
from shared.model import Action, ControlResult, Status

ID = "mailbox-audit-retention"


def evaluate_mailbox_retention(scan: MailboxScan, policy: AuditPolicy) -> ControlResult:
    """NonCompliant while any user or shared mailbox keeps its audit records for less than the minimum."""
    expected = f"AuditLogAgeLimit >= {policy.min_retention_days} days on every user and shared mailbox"
    findings = scan.retention_findings
    zero = sum(1 for finding in findings if finding["tampering"])
    details: dict[str, Any] = {
        "minimum_days": policy.min_retention_days,
        "mailboxes_scanned": scan.users + scan.shared,
        "user_mailboxes": scan.users,
        "shared_mailboxes": scan.shared,
        "findings": findings,
        "zero_retention": zero,
        "unreadable": scan.unreadable,
        "warnings": scan.warnings,
    }
    if (problem := scan.failure(ID, expected, "mailboxes", details)) is not None:
        return problem
    actual = f"{len(findings)} of {scan.users + scan.shared} mailboxes below {policy.min_retention_days} days"
    if findings:
        tamper = (
            f" {zero} have AuditLogAgeLimit 00:00:00, which purges their audit records: a known "
            "anti-forensics step (T1070); investigate who set it."
            if zero
            else ""
        )
        return ControlResult(
            ID,
            Status.NON_COMPLIANT,
            expected,
            actual,
            f"{len(findings)} mailboxes keep audit records for less than "
            f"{policy.min_retention_days} days.{tamper} Fix: Set-Mailbox -AuditLogAgeLimit "
            f"{policy.min_retention_days}.00:00:00. This governs the mailbox's own audit folder, not "
            "audit log search retention.",
            details,
        )
    return ControlResult(
        ID,
        Status.COMPLIANT,
        expected,
        actual,
        f"Every mailbox keeps audit records for at least {policy.min_retention_days} days.",
        details,
    )


def plan_mailbox_retention_fix(scan: MailboxScan, policy: AuditPolicy) -> list[Action]:
    limit = f"{policy.min_retention_days}.00:00:00"
    return [
        Action(
            "Set-Mailbox",
            {"Identity": finding["identity"], "AuditLogAgeLimit": limit},
            f"Set-Mailbox -AuditLogAgeLimit {limit}",
            target=finding["identity"],
        )
        for finding in scan.retention_findings
    ]


CONTROL = Control(
    id=ID,
    title="Mailboxes keep their audit records long enough",
    question="Is every user and shared mailbox's AuditLogAgeLimit at least the configured minimum?",
    expected="AuditLogAgeLimit >= the minimum (MAILBOX_AUDIT_MIN_RETENTION_DAYS), never 00:00:00",
    remediation="Set-Mailbox -Identity <id> -AuditLogAgeLimit <minimum>",
    frameworks=compliance_frameworks(
        "6.1.2 (remediation)", "6.1.2 / 6.1.3 (remediation)", "MS.SECURITYSUITE.5.2v1 (related)"
    ),
    read=read_mailbox_scan,
    evaluate=evaluate_mailbox_retention,
    plan_fix=plan_mailbox_retention_fix,
    measurements=mailbox_measurements,
    wording=ReportWording(
        note="AuditLogAgeLimit 00:00:00 purges the mailbox's own audit records (a known anti-forensics step, "
        "MITRE T1070): reported as possible tampering.",
        fact_labels={"minimum_days": "Minimum AuditLogAgeLimit (days)", "mailboxes_scanned": "Mailboxes scanned"},
        finding_columns=(
            Column("Mailbox", "identity", "mailbox"),
            Column("Type", "type"),
            Column("AuditLogAgeLimit", "age_limit"),
            Column("Days", "days"),
            Column("Possible tampering", "tampering", "yes_no", yes="Yes: limit is zero, records purged"),
        ),
    ),
)
