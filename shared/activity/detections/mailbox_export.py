"""`mailbox-export`: mail taken out in bulk (handbook §3.8): export requests, compliance-search exports and purges,
eDiscovery exports, and MailItemsAccessed throttled (over 1,000 binds a day) or with a very high OperationCount."""

from __future__ import annotations

from collections.abc import Sequence

from shared.activity.baseline import Baseline
from shared.activity.detections.base import Context, Detection, Outcome, Severity, mailbox_of, make_alert, owner_of
from shared.activity.records import AuditRecord, truthy

ID = "mailbox-export"
HIGH_OPERATION_COUNT = 100  # Elastic's "Mailbox Items Accessed Excessively"


def _finding(record: AuditRecord) -> tuple[Severity, str, str | None] | None:
    """(severity, why, mailbox) when the record is an export this detection watches."""
    operation = record.operation.lower()
    if operation == "new-mailboxexportrequest":
        target = record.parameter("FilePath") or ""
        return ("high", f"a mailbox export request{f' to {target}' if target else ''}", mailbox_of(record))
    if operation == "new-compliancesearchaction":
        action = (record.parameter("ActionType") or "").lower()
        if truthy(record.parameter("Export")) or record.has_parameter("Export") or action == "export":
            return ("high", f"a compliance search export ({record.parameter('SearchName') or '?'})", None)
        if truthy(record.parameter("Purge")) or record.has_parameter("Purge") or action == "purge":
            return ("high", f"a compliance search purge ({record.parameter('PurgeType') or 'SoftDelete'})", None)
    if operation in ("searchexported", "searchexportdownloaded"):
        return ("medium", f"an eDiscovery search export ({record.object_id or '?'})", None)
    if operation == "mailitemsaccessed":
        if record.is_throttled:
            return (
                "high",
                "MailItemsAccessed throttled: over 1,000 binds in 24 hours, bind auditing paused",
                owner_of(record),
            )
        bulk = record.operation_count is not None and record.operation_count >= HIGH_OPERATION_COUNT
        if bulk and record.mail_access_type.lower() != "sync":  # a Sync record is one folder, not item reads
            return ("medium", f"{record.operation_count} items read in one aggregated record", owner_of(record))
    return None


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    alerts = []
    for record in records:
        if not record.succeeded or record.is_service_actor:
            continue
        finding = _finding(record)
        if finding is None:
            continue
        severity, why, mailbox = finding
        alerts.append(
            make_alert(
                ID,
                severity,
                [record],
                context,
                f"{record.user_id}: {why} ({record.operation}{f' on {mailbox}' if mailbox else ''}).",
                mailbox=mailbox,
            )
        )
    return Outcome(tuple(alerts))


DETECTION = Detection(ID, "Mailbox export or bulk read", "high", (), evaluate)
