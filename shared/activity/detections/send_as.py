"""`send-as` (medium): mail sent as, or on behalf of, another mailbox by an (actor, mailbox) pair not in the
baseline (handbook §3.5). Waits for the learning period: delegates and shared-mailbox members are learned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from shared.activity.baseline import Baseline, Span, is_new, pair_key, widen
from shared.activity.detections.base import Context, Detection, Outcome, make_alert
from shared.activity.records import AuditRecord

ID = "send-as"


def _mailbox(record: AuditRecord) -> str:
    return (record.send_as_user_smtp or record.send_on_behalf_of_user_smtp or record.mailbox_owner_upn).strip().lower()


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    window = timedelta(days=context.policy.baseline_days)
    pairs: dict[str, Span] = {}
    alerts = []
    for record in records:
        if record.operation.lower() not in ("sendas", "sendonbehalf") or not record.succeeded:
            continue
        if record.is_service_actor or context.is_own(record):
            continue
        mailbox, actor = _mailbox(record), record.actor
        if not mailbox or actor == mailbox:
            continue
        key = pair_key(actor, mailbox)
        known = pairs.get(key) or baseline.send_as_pairs.get(key)
        if is_new(known, record.creation_time, window) and baseline.learned(
            record.creation_time, context.policy.learning_days
        ):
            verb = "as" if record.operation.lower() == "sendas" else "on behalf of"
            alerts.append(
                make_alert(
                    ID,
                    "medium",
                    [record],
                    context,
                    f"{record.user_id} sent mail {verb} {mailbox} for the first time in "
                    f"{context.policy.baseline_days:g} days (LogonType {record.logon_type}).",
                    mailbox=mailbox,
                    target=actor,
                )
            )
        pairs[key] = widen(pairs.get(key) or baseline.send_as_pairs.get(key), record.creation_time)
    return Outcome(tuple(alerts), {"send_as_pairs": {**baseline.send_as_pairs, **pairs}} if pairs else {})


DETECTION = Detection(ID, "Mail sent as another mailbox by a new sender", "medium", ("send_as_pairs",), evaluate)
