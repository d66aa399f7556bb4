"""The one Get-Mailbox pass shared by mailbox-audit-actions and mailbox-audit-retention.

The scan is pure (rows in, findings out): it accumulates as pages stream in and keeps only findings, so memory
follows the findings, not the tenant. `read_mailbox_scan` feeds it, once per run for both controls.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.audit_actions import LOGON_TYPES, PREMIUM_CAPABILITY
from shared.controls.audit_actions import required_actions as baseline_actions
from shared.controls.reading import RunContext, count_rows, stream_into
from shared.controls.scan import StreamedScan

MAILBOX_FIELDS = (
    "ExternalDirectoryObjectId",
    "Guid",
    "UserPrincipalName",
    "RecipientTypeDetails",
    "AuditEnabled",
    "AuditAdmin",
    "AuditDelegate",
    "AuditOwner",
    "DefaultAuditSet",
    "AuditLogAgeLimit",
    "PersistedCapabilities",
)
USER, SHARED = "UserMailbox", "SharedMailbox"
SCANNED_TYPES = (USER, SHARED)  # retention covers both; actions judge users (shared: report-only, opt-in)
# Selected properties a verdict depends on. Exchange returns every $selected property (null when empty); one that
# is absent from the answer was not read, so the mailbox is unreadable: treating it as empty judged cis-v4
# mailboxes without PersistedCapabilities against the weaker E3 lists (Compliant) and planned writes from data
# never read (found by tests/hardening).
JUDGED_PROPERTIES = (
    "AuditEnabled",
    "AuditAdmin",
    "AuditDelegate",
    "AuditOwner",
    "DefaultAuditSet",
    "AuditLogAgeLimit",
    "PersistedCapabilities",
)
_TIMESPAN = re.compile(r"^(?:(\d{1,5})\.)?(\d{1,2}):([0-5]\d):([0-5]\d)(?:\.\d{1,7})?$")


@functools.cache
def _required_lowered(baseline: str, premium: bool) -> dict[str, dict[str, str]]:
    """Per logon type: lower-cased required action -> its canonical spelling (computed once per baseline)."""
    return {
        logon: {action.lower(): action for action in actions}
        for logon, actions in baseline_actions(baseline, premium).items()
    }


def timespan_days(value: Any) -> float | None:
    """Days in a .NET TimeSpan string (`d.hh:mm:ss` or `hh:mm:ss`); None when it is not one."""
    if not isinstance(value, str) or not (match := _TIMESPAN.match(value.strip())):
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    if hours > 23:
        return None
    return days + (hours * 3600 + minutes * 60 + seconds) / 86400


def _lowered(value: Any) -> set[str] | None:
    """A list of strings as a lower-cased set (null means empty); None when it is not a list of strings."""
    if value is None:
        return set()
    if not isinstance(value, list):
        return None
    try:
        return {item.lower() for item in value}
    except (AttributeError, TypeError):  # a non-string item
        return None


@dataclass
class MailboxScan(StreamedScan):
    """What one pass over the tenant's user and shared mailboxes found, for both mailbox controls."""

    policy: AuditPolicy
    users: int = 0
    shared: int = 0
    action_findings: list[dict[str, Any]] = field(default_factory=list)
    retention_findings: list[dict[str, Any]] = field(default_factory=list)
    not_explicitly_enabled: int | None = None

    def add(self, row: dict[str, Any]) -> None:
        kind = row.get("RecipientTypeDetails")
        if kind not in SCANNED_TYPES:
            if isinstance(kind, str) and kind:
                return  # a known other type (room, group...): not in scope
            self.note_unreadable(str(row.get("UserPrincipalName") or "a mailbox without a type"))  # fail closed
            return
        identity = row.get("ExternalDirectoryObjectId") or row.get("Guid") or row.get("UserPrincipalName")
        upn = row.get("UserPrincipalName") if isinstance(row.get("UserPrincipalName"), str) else None
        if not isinstance(identity, str) or not identity:
            self.note_unreadable(upn or "a mailbox without an identity")
            return
        if kind == USER:
            self.users += 1
        else:
            self.shared += 1
        audited = {logon: _lowered(row.get(f"Audit{logon}")) for logon in LOGON_TYPES}
        managed = _lowered(row.get("DefaultAuditSet"))
        capabilities = _lowered(row.get("PersistedCapabilities"))
        audit_enabled = row.get("AuditEnabled")
        days = timespan_days(row.get("AuditLogAgeLimit"))
        if (
            None in audited.values()
            or managed is None
            or capabilities is None
            or not isinstance(audit_enabled, bool)
            or days is None
            or any(name not in row for name in JUDGED_PROPERTIES)
        ):
            self.note_unreadable(upn or identity)
            return
        base = {"identity": identity, "upn": upn, "type": kind}
        if kind == USER or self.policy.include_shared:
            self._judge_actions(
                base,
                audit_enabled,
                audited,
                managed,
                PREMIUM_CAPABILITY.lower() in capabilities,
                report_only=kind != USER,
            )
        if days < self.policy.min_retention_days:
            self.retention_findings.append(
                {**base, "age_limit": row["AuditLogAgeLimit"], "days": round(days, 3), "tampering": days == 0}
            )

    def _judge_actions(
        self,
        base: dict[str, Any],
        audit_enabled: bool,
        audited: dict[str, set[str] | None],
        managed: set[str],
        premium: bool,
        *,
        report_only: bool,
    ) -> None:
        frozen = [logon for logon in LOGON_TYPES if logon.lower() not in managed]
        missing: dict[str, list[str]] = {}
        if self.policy.baseline != "microsoft-default":
            for logon, required in _required_lowered(self.policy.baseline, premium).items():
                gap = required.keys() - (audited[logon] or set())
                if gap:
                    missing[logon] = sorted(required[action] for action in gap)
        failing = not audit_enabled or bool(missing) or (self.policy.baseline == "microsoft-default" and frozen)
        if failing:
            self.action_findings.append(
                {
                    **base,
                    "audit_enabled": audit_enabled,
                    "missing": missing,
                    "frozen": frozen,
                    "premium": premium,
                    "report_only": report_only,
                }
            )

    @property
    def noncompliant_users(self) -> int:
        return sum(1 for finding in self.action_findings if not finding["report_only"])


# Booleans quoted ('True'), never $true: the ExchangeOnlineManagement module rewrites $true/$false inside -Filter
# before sending, and the REST service may refuse or misread the $ form (exchange-admin-api.md §10.6).
NOT_EXPLICIT_FILTER = (
    "AuditEnabled -ne 'True' -and RecipientTypeDetails -eq 'UserMailbox' -and PersistedCapabilities -ne 'M365Auditing'"
)


def read_mailbox_scan(context: RunContext) -> MailboxScan:
    """One pass over user and shared mailboxes, shared by mailbox-audit-actions and mailbox-audit-retention."""

    def scan() -> MailboxScan:
        result = MailboxScan(context.policy)
        pages = context.client.pages(
            "Get-Mailbox",
            {"ResultSize": "Unlimited", "RecipientTypeDetails": list(SCANNED_TYPES)},
            select=MAILBOX_FIELDS,
        )
        result.warnings = stream_into(pages, result)
        if context.policy.check_explicit_enable:
            result.not_explicitly_enabled = count_rows(
                context.client.pages(
                    "Get-Mailbox",
                    {"ResultSize": "Unlimited", "Filter": NOT_EXPLICIT_FILTER},
                    select=("ExternalDirectoryObjectId",),
                )
            )
        return result

    scan_result: MailboxScan = context.cached("mailboxes", scan)
    return scan_result


def mailbox_measurements(details: Mapping[str, Any]) -> dict[str, float]:
    """Users plus shared mailboxes read: the same meaning whichever mailbox control reports it."""
    if "user_mailboxes" not in details:
        return {}
    return {"mailboxes_scanned": details["user_mailboxes"] + details.get("shared_mailboxes", 0)}
