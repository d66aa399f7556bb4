"""audit-bypass: every association with AuditBypassEnabled true is a finding unless a written exception covers it.

Pure: rows in, findings out. Get-MailboxAuditBypassAssociation returns every association, enabled or not, so the
scan counts them all and keeps only the enabled ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.catalogue import AUDIT_BYPASS
from shared.controls.scan import StreamedScan
from shared.model import ControlResult, Status

BYPASS_FIELDS = ("Guid", "Name", "Identity", "AuditBypassEnabled")


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
        entry = {"identity": identity or name or guid, "name": name, "guid": guid}
        exception = self.policy.exceptions.find(AUDIT_BYPASS.id, identity, name, guid)
        if exception is not None:
            self.exceptions_used.append({**exception.as_dict(), "matched": entry["identity"]})
        else:
            self.findings.append(entry)


def evaluate_bypass(scan: BypassScan, policy: AuditPolicy) -> ControlResult:
    control = AUDIT_BYPASS
    used = {entry["identity"].lower() for entry in scan.exceptions_used}
    # A written exception that matches no bypassed account is stale: worth removing from the register.
    unused = [exception.as_dict() for (control, identity), exception in policy.exceptions.valid.items()
              if control == AUDIT_BYPASS.id and identity not in used]
    details: dict[str, Any] = {
        "associations_total": scan.total, "bypass_enabled": scan.enabled, "findings": scan.findings,
        "exceptions_used": scan.exceptions_used, "exceptions_rejected": list(policy.exceptions.rejected),
        "exceptions_unused": unused, "unreadable": scan.unreadable, "system_warnings": scan.system_warnings,
        "warnings": scan.warnings}
    if (problem := scan.failure(control.id, control.expected, "bypass associations", details)) is not None:
        return problem
    rejected = (f" {len(policy.exceptions.rejected)} entries of the exception register were not accepted "
                "(expired, incomplete or malformed); see the report." if policy.exceptions.rejected else "")
    excused = f" {len(scan.exceptions_used)} covered by a written exception." if scan.exceptions_used else ""
    actual = f"{len(scan.findings)} bypassed without exception ({scan.enabled} bypassed of {scan.total})"
    if scan.findings:
        sample = ", ".join(str(f["identity"]) for f in scan.findings[:5])
        return ControlResult(control.id, Status.NON_COMPLIANT, control.expected, actual,
                             f"{len(scan.findings)} accounts are exempt from mailbox auditing without a written "
                             f"exception (e.g. {sample}): none of their mailbox actions are audited."
                             f"{excused}{rejected} Fix: Set-MailboxAuditBypassAssociation -AuditBypassEnabled "
                             "$false, or record a written exception in AUDIT_EXCEPTIONS_FILE.", details)
    return ControlResult(control.id, Status.COMPLIANT, control.expected, actual,
                         f"No account bypasses mailbox auditing without a written exception.{excused}{rejected}",
                         details)
