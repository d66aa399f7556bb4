"""audit-bypass: every association with AuditBypassEnabled true is a finding unless a written exception covers it.

Get-MailboxAuditBypassAssociation returns every association, enabled or not, so the scan counts them all and keeps
only the enabled ones. The scan is pure: rows in, findings out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.base import Column, Control, ReportWording, compliance_frameworks
from shared.controls.reading import RunContext, stream_into
from shared.controls.scan import StreamedScan
from shared.model import Action, ControlResult, Status

log = logging.getLogger("mailbox_audit_guard.collect")

ID = "audit-bypass"
EXPECTED = "no AuditBypassEnabled = True without a written exception"
BYPASS_FIELDS = ("Guid", "Name", "Identity", "AuditBypassEnabled")
SYSTEM_BYPASS_PREFIX = "asc-2x1"  # CIS v7: warnings about these system objects are logged, not findings


@dataclass
class BypassScan(StreamedScan):
    policy: AuditPolicy
    total: int = 0
    enabled: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    exceptions_used: list[dict[str, str]] = field(default_factory=list)
    system_warnings: list[str] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        self.total += 1
        names = [row.get(key) if isinstance(row.get(key), str) else None for key in ("Guid", "Name", "Identity")]
        guid, name, identity = names
        enabled = row.get("AuditBypassEnabled")
        if not isinstance(enabled, bool) or not (guid or identity or name):
            self.note_unreadable(name or identity or guid or "an association without a name")
            return
        if not enabled:
            return
        self.enabled += 1
        entry: dict[str, Any] = {"identity": identity or name or guid, "name": name, "guid": guid}
        exception = self.policy.exceptions.find(ID, identity, name, guid)
        if exception is not None:
            self.exceptions_used.append({**exception.as_dict(), "matched": entry["identity"]})
        else:
            self.findings.append(entry)


def evaluate_bypass(scan: BypassScan, policy: AuditPolicy) -> ControlResult:
    """NonCompliant while any enabled bypass lacks a written exception; unreadable associations make it an Error."""
    used = {entry["identity"].lower() for entry in scan.exceptions_used}
    # A written exception that matches no bypassed account is stale: worth removing from the register.
    unused = [
        exception.as_dict()
        for (control, identity), exception in policy.exceptions.valid.items()
        if control == ID and identity not in used
    ]
    details: dict[str, Any] = {
        "associations_total": scan.total,
        "bypass_enabled": scan.enabled,
        "findings": scan.findings,
        "exceptions_used": scan.exceptions_used,
        "exceptions_rejected": list(policy.exceptions.rejected),
        "exceptions_unused": unused,
        "unreadable": scan.unreadable,
        "system_warnings": scan.system_warnings,
        "warnings": scan.warnings,
    }
    if (problem := scan.failure(ID, EXPECTED, "bypass associations", details)) is not None:
        return problem
    rejected = (
        f" {len(policy.exceptions.rejected)} entries of the exception register were not accepted "
        "(expired, incomplete or malformed); see the report."
        if policy.exceptions.rejected
        else ""
    )
    excused = f" {len(scan.exceptions_used)} covered by a written exception." if scan.exceptions_used else ""
    actual = f"{len(scan.findings)} bypassed without exception ({scan.enabled} bypassed of {scan.total})"
    if scan.findings:
        sample = ", ".join(str(f["identity"]) for f in scan.findings[:5])
        return ControlResult(
            ID,
            Status.NON_COMPLIANT,
            EXPECTED,
            actual,
            f"{len(scan.findings)} accounts are exempt from mailbox auditing without a written "
            f"exception (e.g. {sample}): none of their mailbox actions are audited."
            f"{excused}{rejected} Fix: Set-MailboxAuditBypassAssociation -AuditBypassEnabled "
            "$false, or record a written exception in AUDIT_EXCEPTIONS_FILE.",
            details,
        )
    return ControlResult(
        ID,
        Status.COMPLIANT,
        EXPECTED,
        actual,
        f"No account bypasses mailbox auditing without a written exception.{excused}{rejected}",
        details,
    )


def read_bypass_scan(context: RunContext) -> BypassScan:
    result = BypassScan(context.policy)
    warnings = stream_into(
        context.client.pages("Get-MailboxAuditBypassAssociation", {"ResultSize": "Unlimited"}, select=BYPASS_FIELDS),
        result,
    )
    result.system_warnings = [w for w in warnings if SYSTEM_BYPASS_PREFIX in w.lower()]
    result.warnings = [w for w in warnings if w not in result.system_warnings]
    if result.system_warnings:
        log.info(
            "Get-MailboxAuditBypassAssociation: %d warnings about Asc-2X1 system objects (not findings)",
            len(result.system_warnings),
        )
    return result


def plan_bypass_fix(scan: BypassScan, policy: AuditPolicy | None = None) -> list[Action]:
    """Switch bypass off for every association that has no valid written exception."""
    return [
        Action(
            "Set-MailboxAuditBypassAssociation",
            {"Identity": finding["guid"] or finding["identity"], "AuditBypassEnabled": False},
            "Set-MailboxAuditBypassAssociation -AuditBypassEnabled $false",
            target=finding["identity"],
        )
        for finding in scan.findings
    ]


def bypass_measurements(details: Mapping[str, Any]) -> dict[str, float]:
    return {"bypass_entries_enabled": details["bypass_enabled"]} if "bypass_enabled" in details else {}


CONTROL = Control(
    id=ID,
    title="No mailbox audit bypass without a written exception",
    question="Is any account exempt from mailbox auditing (Get-MailboxAuditBypassAssociation)?",
    expected=EXPECTED,
    remediation="Set-MailboxAuditBypassAssociation -Identity <Guid> -AuditBypassEnabled $false",
    frameworks=compliance_frameworks("6.1.3", "6.1.4", None),
    read=read_bypass_scan,
    evaluate=evaluate_bypass,
    plan_fix=plan_bypass_fix,
    safe_unattended=False,  # removing a bypass may break a deliberate (if unwritten) exemption: a person decides
    measurements=bypass_measurements,
    wording=ReportWording(
        note="A bypass association exempts an account from mailbox auditing altogether. CIS allows it only with "
        "a written exception (the register named by AUDIT_EXCEPTIONS_FILE).",
        fact_labels={
            "associations_total": "Bypass associations read",
            "bypass_enabled": "Associations with AuditBypassEnabled = True",
        },
        finding_columns=(Column("Identity", "identity"), Column("Name", "name"), Column("Guid", "guid")),
    ),
)
