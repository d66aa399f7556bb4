"""`audit-tampering` (high): auditing switched off, bypassed, shortened or narrowed (handbook §3.1).

Judged by the values written, so Microsoft's own actors and this product's writes are included: a system
`Set-Mailbox` without audit parameters never fires, and a revert by this product is alerted, labelled as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shared.activity.baseline import Baseline
from shared.activity.detections.base import Context, Detection, Outcome, admin_records, mailbox_of, make_alert
from shared.activity.records import AuditRecord, truthy
from shared.controls.mailbox_scan import timespan_days  # the same TimeSpan reading as the retention control

ID = "audit-tampering"
AUDIT_LISTS = ("AuditOwner", "AuditDelegate", "AuditAdmin")
_MAILBOX_CMDLETS = ("Set-Mailbox", "Set-MailUser", "Set-RemoteMailbox")


def _reasons(record: AuditRecord, context: Context) -> list[str]:
    operation = record.operation.lower()
    reasons: list[str] = []
    if operation == "set-organizationconfig" and truthy(record.parameter("AuditDisabled")):
        reasons.append("audit-by-default switched off for the organisation (AuditDisabled True)")
    if operation == "set-adminauditlogconfig":
        for name in ("UnifiedAuditLogIngestionEnabled", "AdminAuditLogEnabled"):
            if truthy(record.parameter(name)) is False:
                reasons.append(
                    f"{name} set to False: audit log {'search' if name[0] == 'U' else 'of admin actions'} off"
                )
    if operation == "set-mailboxauditbypassassociation" and truthy(record.parameter("AuditBypassEnabled")):
        reasons.append("an account now bypasses mailbox auditing (AuditBypassEnabled True)")
    if operation in {name.lower() for name in _MAILBOX_CMDLETS}:
        if truthy(record.parameter("AuditEnabled")) is False:
            reasons.append("mailbox auditing set off (AuditEnabled False)")
        if (limit := record.parameter("AuditLogAgeLimit")) is not None:
            days = timespan_days(limit.strip().strip('"'))
            old = _old_value(record, "AuditLogAgeLimit")
            old_days = timespan_days(old.strip().strip('"')) if old else None
            if days is not None and days == 0:
                reasons.append("AuditLogAgeLimit set to 00:00:00: the mailbox keeps no audit records")
            # Whole days: the audit-pipeline canary moves only the sub-day part, and hours do not weaken retention.
            elif days is not None and old_days is not None and math.floor(days) < math.floor(old_days):
                reasons.append(f"AuditLogAgeLimit lowered from {old} to {limit}")
            elif days is not None and old_days is None and days < context.min_retention_days:
                reasons.append(
                    f"AuditLogAgeLimit set to {limit}, below the minimum of {context.min_retention_days} days"
                )
        for name in AUDIT_LISTS:
            value = record.parameter(name)
            if value is not None and (why := _list_change(record, name, value)):
                reasons.append(why)
    return reasons


def _list_change(record: AuditRecord, name: str, value: str) -> str | None:
    """@{Add=...} only adds (what this product's remediation writes); @{Remove=...} shrinks; a plain list replaces
    the list, which shrinks it unless ModifiedProperties shows nothing was lost."""
    lowered = value.replace(" ", "").lower()
    if "remove=" in lowered:
        return f"{name}: actions removed ({value})"
    if "add=" in lowered:
        return None
    old = _old_value(record, name)
    if old is not None:
        before = {item.strip().lower() for item in old.replace(";", ",").split(",") if item.strip()}
        after = {item.strip().lower() for item in value.replace(";", ",").split(",") if item.strip()}
        lost = sorted(before - after)
        return f"{name}: actions removed ({', '.join(lost)})" if lost else None
    return f"{name} replaced with {value or 'nothing'} (the previous list may have been longer)"


def _old_value(record: AuditRecord, name: str) -> str | None:
    for prop, old, _new in record.modified_properties:
        if prop.lower() == name.lower() and old:
            return old
    return None


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    alerts = []
    operations = (
        "Set-OrganizationConfig",
        "Set-AdminAuditLogConfig",
        "Set-MailboxAuditBypassAssociation",
        *_MAILBOX_CMDLETS,
    )
    for record in admin_records(records, *operations):
        reasons = _reasons(record, context)
        if not reasons:
            continue
        by_product = context.is_own(record)
        label = " Written by this product (its app id): a revert or a misconfiguration." if by_product else ""
        target = mailbox_of(record) or record.object_id
        alerts.append(
            make_alert(
                ID,
                "high",
                [record],
                context,
                f"{record.operation} on {target or 'the organisation'}: {'; '.join(reasons)}.{label} "
                "Re-check the affected control now.",
                mailbox=mailbox_of(record)
                if record.operation.lower() in {n.lower() for n in _MAILBOX_CMDLETS}
                else None,
                target=target,
            )
        )
    return Outcome(tuple(alerts))


DETECTION = Detection(ID, "Auditing switched off or weakened", "high", (), evaluate)
