"""`non-owner-access` (medium): a mailbox opened or read by someone other than its owner, for an (actor, mailbox)
pair not in the baseline (handbook §3.6). Waits for the learning period: delegates are learned. Access through
PowerShell or EWS is named in the message (and raises the severity for PowerShell)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from shared.activity.baseline import Baseline, Span, is_new, pair_key, widen
from shared.activity.detections.base import Context, Detection, Outcome, Severity, is_non_owner, make_alert, owner_of
from shared.activity.records import AuditRecord

ID = "non-owner-access"
_OPERATIONS = ("mailboxlogin", "mailitemsaccessed")
LOGON_NAMES = {
    0: "Owner",
    1: "Admin",
    2: "Delegated",
    3: "Transport",
    4: "SystemService",
    5: "BestAccess",
    6: "DelegatedAdmin",
}


def client_note(record: AuditRecord) -> str | None:
    info = record.client_info_string.lower()
    if "powershell" in info:
        return "PowerShell"
    if "client=webservices" in info or "ews" in info:
        return "EWS"
    return None


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    window = timedelta(days=context.policy.baseline_days)
    pairs: dict[str, Span] = {}
    alerts = []
    for record in records:
        if record.operation.lower() not in _OPERATIONS or not record.succeeded:
            continue
        if record.is_service_actor or context.is_own(record) or not is_non_owner(record):
            continue
        mailbox = owner_of(record) or record.mailbox_guid.lower()
        if not mailbox or mailbox == record.actor:
            continue
        key = pair_key(record.actor, mailbox)
        known = pairs.get(key) or baseline.access_pairs.get(key)
        if is_new(known, record.creation_time, window) and baseline.learned(
            record.creation_time, context.policy.learning_days
        ):
            client = client_note(record)
            severity: Severity = "high" if client == "PowerShell" else "medium"
            via = f" through {client} ({record.client_info_string})" if client else ""
            logon = (
                "unknown" if record.logon_type is None else LOGON_NAMES.get(record.logon_type, str(record.logon_type))
            )
            alerts.append(
                make_alert(
                    ID,
                    severity,
                    [record],
                    context,
                    f"{record.user_id} accessed {mailbox}'s mailbox ({record.operation}, logon type {logon}){via}: "
                    f"not seen in the last {context.policy.baseline_days:g} days.",
                    mailbox=mailbox,
                    target=record.actor,
                )
            )
        pairs[key] = widen(known, record.creation_time)
    return Outcome(tuple(alerts), {"access_pairs": {**baseline.access_pairs, **pairs}} if pairs else {})


DETECTION = Detection(ID, "Mailbox accessed by a new non-owner", "medium", ("access_pairs",), evaluate)
