"""Per-mailbox evaluation for mailbox-audit-actions and mailbox-audit-retention. Pure: rows in, findings out.

The scan accumulates as pages stream in and keeps only findings, so memory follows the findings, not the tenant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shared.config import AuditPolicy
from shared.controls import LOGON_TYPES, MAILBOX_AUDIT_ACTIONS, MAILBOX_AUDIT_RETENTION, PREMIUM_CAPABILITY
from shared.controls import required_actions as baseline_actions
from shared.models import ControlResult, Status

MAILBOX_FIELDS = ("ExternalDirectoryObjectId", "Guid", "UserPrincipalName", "RecipientTypeDetails", "AuditEnabled",
                  "AuditAdmin", "AuditDelegate", "AuditOwner", "DefaultAuditSet", "AuditLogAgeLimit",
                  "PersistedCapabilities")
USER, SHARED = "UserMailbox", "SharedMailbox"
SCANNED_TYPES = (USER, SHARED)  # retention covers both; actions judge users (shared: report-only, opt-in)
MAX_EXAMPLES = 20
_TIMESPAN = re.compile(r"^(?:(\d{1,5})\.)?(\d{1,2}):([0-5]\d):([0-5]\d)(?:\.\d{1,7})?$")


def timespan_days(value: Any) -> float | None:
    """Days in a .NET TimeSpan string (`d.hh:mm:ss` or `hh:mm:ss`); None when it is not one."""
    if not isinstance(value, str) or not (match := _TIMESPAN.match(value.strip())):
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    if hours > 23:
        return None
    return days + (hours * 3600 + minutes * 60 + seconds) / 86400


def _string_list(value: Any) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


@dataclass
class MailboxScan:
    """What one pass over the tenant's user and shared mailboxes found, for both mailbox controls."""

    policy: AuditPolicy
    users: int = 0
    shared: int = 0
    action_findings: list[dict[str, Any]] = field(default_factory=list)
    retention_findings: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0
    unreadable_examples: list[str] = field(default_factory=list)
    incomplete: str | None = None  # why the scan cannot be trusted as complete, if it cannot
    not_explicitly_enabled: int | None = None
    warnings: list[str] = field(default_factory=list)

    def reset(self) -> None:
        """Forget everything (the query restarted from page 1)."""
        fresh = MailboxScan(self.policy)
        self.__dict__.update(fresh.__dict__)

    def add(self, row: dict[str, Any]) -> None:
        kind = row.get("RecipientTypeDetails")
        if kind not in SCANNED_TYPES:
            return  # the query asks for users and shared only; anything else is not in scope
        identity = row.get("ExternalDirectoryObjectId") or row.get("Guid") or row.get("UserPrincipalName")
        upn = row.get("UserPrincipalName") if isinstance(row.get("UserPrincipalName"), str) else None
        if not isinstance(identity, str) or not identity:
            self._unreadable(upn or "a mailbox without an identity")
            return
        if kind == USER:
            self.users += 1
        else:
            self.shared += 1
        lists = {logon: _string_list(row.get(f"Audit{logon}")) for logon in LOGON_TYPES}
        default_set = _string_list(row.get("DefaultAuditSet"))
        capabilities = _string_list(row.get("PersistedCapabilities"))
        audit_enabled = row.get("AuditEnabled")
        days = timespan_days(row.get("AuditLogAgeLimit"))
        if (any(value is None for value in lists.values()) or default_set is None or capabilities is None
                or not isinstance(audit_enabled, bool) or days is None):
            self._unreadable(upn or identity)
            return
        base = {"identity": identity, "upn": upn, "type": kind}
        premium = PREMIUM_CAPABILITY.lower() in {c.lower() for c in capabilities}
        if kind == USER or self.policy.include_shared:
            self._judge_actions(base, audit_enabled, lists, default_set, premium, report_only=kind != USER)
        if days < self.policy.min_retention_days:
            self.retention_findings.append({**base, "age_limit": row["AuditLogAgeLimit"], "days": round(days, 3),
                                            "tampering": days == 0})

    def _judge_actions(self, base: dict[str, Any], audit_enabled: bool, lists: dict[str, list[str] | None],
                       default_set: list[str], premium: bool, *, report_only: bool) -> None:
        managed = {logon.lower() for logon in default_set}
        frozen = [logon for logon in LOGON_TYPES if logon.lower() not in managed]
        missing: dict[str, list[str]] = {}
        if self.policy.baseline != "microsoft-default":
            for logon, required in baseline_actions(self.policy.baseline, premium).items():
                have = {action.lower() for action in lists[logon] or []}
                gap = sorted(action for action in required if action.lower() not in have)
                if gap:
                    missing[logon] = gap
        failing = not audit_enabled or bool(missing) or (self.policy.baseline == "microsoft-default" and frozen)
        if failing:
            self.action_findings.append({**base, "audit_enabled": audit_enabled, "missing": missing,
                                         "frozen": frozen, "premium": premium, "report_only": report_only})

    def _unreadable(self, who: str) -> None:
        self.unreadable += 1
        if len(self.unreadable_examples) < MAX_EXAMPLES:
            self.unreadable_examples.append(who)

    @property
    def noncompliant_users(self) -> int:
        return sum(1 for finding in self.action_findings if not finding["report_only"])


def _incomplete(scan: MailboxScan, control_id: str, expected: str, details: dict[str, Any]) -> ControlResult | None:
    """Fail closed: a scan that was cut short, or had rows we could not read, proves nothing."""
    if scan.incomplete:
        return ControlResult(control_id, Status.ERROR, expected, "incomplete read",
                             f"The mailbox list could not be read completely: {scan.incomplete}", details)
    if scan.unreadable:
        return ControlResult(control_id, Status.ERROR, expected, f"{scan.unreadable} mailboxes unreadable",
                             f"{scan.unreadable} mailboxes had missing or malformed audit properties (e.g. "
                             f"{', '.join(scan.unreadable_examples[:5])}); their compliance is unknown.", details)
    return None


def evaluate_mailbox_actions(scan: MailboxScan, policy: AuditPolicy) -> ControlResult:
    control = MAILBOX_AUDIT_ACTIONS
    expected = f"AuditEnabled True and the {policy.baseline} action lists on every user mailbox"
    if policy.baseline == "microsoft-default":
        expected = "AuditEnabled True and DefaultAuditSet = Admin, Delegate, Owner on every user mailbox"
    failing = scan.noncompliant_users
    details: dict[str, Any] = {
        "baseline": policy.baseline, "mailboxes_scanned": scan.users + (scan.shared if policy.include_shared else 0),
        "mailboxes_noncompliant": failing, "not_explicitly_enabled": scan.not_explicitly_enabled,
        "findings": scan.action_findings, "unreadable": scan.unreadable}
    if (problem := _incomplete(scan, control.id, expected, details)) is not None:
        return problem
    frozen = sum(1 for finding in scan.action_findings if finding["frozen"])
    actual = f"{failing} of {scan.users} user mailboxes fall short"
    meaning = ("AuditEnabled is reported as Exchange returns it: with audit-by-default on it is True for every "
               "covered mailbox, whatever was set; only a bypass association exempts a mailbox.")
    if failing:
        return ControlResult(control.id, Status.NON_COMPLIANT, expected, actual,
                             f"{failing} user mailboxes lack required audit actions or auditing "
                             f"({frozen} have frozen lists that no longer receive Microsoft's new actions). "
                             f"Fix: Set-Mailbox -Audit<LogonType> @{{Add=...}}. {meaning}", details)
    return ControlResult(control.id, Status.COMPLIANT, expected, actual,
                         f"All {scan.users} user mailboxes audit the {policy.baseline} actions. {meaning}", details)


def evaluate_mailbox_retention(scan: MailboxScan, policy: AuditPolicy) -> ControlResult:
    control = MAILBOX_AUDIT_RETENTION
    expected = f"AuditLogAgeLimit >= {policy.min_retention_days} days on every user and shared mailbox"
    findings = scan.retention_findings
    zero = sum(1 for finding in findings if finding["tampering"])
    details: dict[str, Any] = {"minimum_days": policy.min_retention_days, "mailboxes_scanned": scan.users + scan.shared,
                               "findings": findings, "zero_retention": zero, "unreadable": scan.unreadable}
    if (problem := _incomplete(scan, control.id, expected, details)) is not None:
        return problem
    actual = f"{len(findings)} of {scan.users + scan.shared} mailboxes below {policy.min_retention_days} days"
    if findings:
        tamper = (f" {zero} have AuditLogAgeLimit 00:00:00, which purges their audit records: a known "
                  "anti-forensics step (T1070); investigate who set it." if zero else "")
        return ControlResult(control.id, Status.NON_COMPLIANT, expected, actual,
                             f"{len(findings)} mailboxes keep audit records for less than "
                             f"{policy.min_retention_days} days.{tamper} Fix: Set-Mailbox -AuditLogAgeLimit "
                             f"{policy.min_retention_days}.00:00:00. This governs the mailbox's own audit folder, not "
                             "audit log search retention.", details)
    return ControlResult(control.id, Status.COMPLIANT, expected, actual,
                         f"Every mailbox keeps audit records for at least {policy.min_retention_days} days.", details)
