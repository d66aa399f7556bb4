"""`mass-delete`: many items deleted by one actor in one hour, or any HardDelete by a non-owner (handbook §3.7).

Items are counted (`AffectedItems`), not records, per actor per clock hour of event time, across batches: the alert
fires once, when the hour's count crosses `WATCH_MASS_DELETE_PER_HOUR` (high) or reaches five times the actor's
own busiest hour in the baseline window (and at least 50; medium, once the actor has a history of three hours with
deletes). Late records land in their own hour. A HardDelete in someone else's mailbox is medium on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from shared.activity.baseline import Baseline, hour_bucket
from shared.activity.detections.base import Context, Detection, Outcome, Severity, is_non_owner, make_alert, owner_of
from shared.activity.records import AuditRecord

ID = "mass-delete"
OPERATIONS = ("harddelete", "softdelete", "movetodeleteditems")
BASELINE_FACTOR = 5
BASELINE_FLOOR = 50
BASELINE_MIN_HOURS = 3


def items(record: AuditRecord) -> int:
    return record.affected_items or record.operation_count or 1


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    limit = context.policy.mass_delete_per_hour
    batch: dict[tuple[str, str], list[AuditRecord]] = defaultdict(list)
    alerts = []
    for record in records:
        if record.operation.lower() not in OPERATIONS or not record.succeeded:
            continue
        if record.is_service_actor or context.is_own(record):
            continue
        batch[(record.actor, hour_bucket(record.creation_time))].append(record)
        if record.operation.lower() == "harddelete" and is_non_owner(record):
            alerts.append(
                make_alert(
                    ID,
                    "medium",
                    [record],
                    context,
                    f"{record.user_id} hard-deleted {items(record)} item(s) in {owner_of(record) or 'a mailbox'} "
                    f"that is not theirs (LogonType {record.logon_type}): gone past the Recoverable Items folder.",
                    mailbox=owner_of(record),
                    key=("non-owner-harddelete", record.id),
                )
            )
    deletes = dict(baseline.deletes)
    for (actor, hour), found in sorted(batch.items()):
        history = baseline.deletes.get(actor, {})
        before = history.get(hour, 0)
        after = before + sum(items(record) for record in found)
        others = [count for other, count in history.items() if other != hour]
        busiest = max(others, default=0)
        baseline_limit = max(BASELINE_FLOOR, BASELINE_FACTOR * busiest) if len(others) >= BASELINE_MIN_HOURS else None
        severity: Severity | None = None
        why = ""
        if before < limit <= after:
            severity, why = "high", f"above WATCH_MASS_DELETE_PER_HOUR ({limit})"
        elif baseline_limit is not None and before < baseline_limit <= after < limit:
            severity, why = "medium", f"{BASELINE_FACTOR}x this actor's busiest hour of the baseline window ({busiest})"
        if severity is not None:
            mailboxes = sorted({owner_of(record) for record in found if owner_of(record)})
            alerts.append(
                make_alert(
                    ID,
                    severity,
                    found,
                    context,
                    f"{found[0].user_id} deleted {after} items in the hour from {hour}: {why}. "
                    f"Mailboxes: {', '.join(mailboxes) or '?'}.",
                    mailbox=mailboxes[0] if len(mailboxes) == 1 else None,
                    key=("hour", actor, hour),
                )
            )
        deletes[actor] = {**deletes.get(actor, {}), hour: after}
    return Outcome(tuple(alerts), {"deletes": deletes} if batch else {})


DETECTION = Detection(ID, "Mass deletion of mail", "high", ("deletes",), evaluate)
