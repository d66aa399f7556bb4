"""`inbox-rule-evasion` (high): an inbox rule that hides mail about the compromise (handbook §3.4).

Fires when a `New-InboxRule`/`Set-InboxRule` both hides (deletes, or moves to Deleted Items, Junk Email, RSS or
Conversation History) and looks for the words a victim would be warned with (Sentinel's and Elastic's lists).
A filing rule (a move elsewhere) or a spam rule without those words does not fire.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.activity.baseline import Baseline
from shared.activity.detections.base import Context, Detection, Outcome, admin_records, make_alert
from shared.activity.detections.mail_forwarding import _rule_mailbox
from shared.activity.records import AuditRecord, truthy

ID = "inbox-rule-evasion"
HIDING_FOLDERS = frozenset(
    {"deleted items", "junk email", "junk e-mail", "rss feeds", "rss subscriptions", "conversation history"}
)
KEYWORDS = (
    "helpdesk",
    "help desk",
    "it support",
    "suspicious",
    "phish",
    "hack",
    "spam",
    "do not click",
    "don't click",
    "hijack",
    "compromise",
    "security",
    "virus",
    "malware",
    "fraud",
    "scam",
    "invoice",
    "payment",
    "wire",
    "transfer",
    "bank",
    "password",
    "reset",
    "login",
    "log in",
    "sign in",
    "verify",
    "unusual",
    "alert",
)
KEYWORD_PARAMETERS = (
    "SubjectContainsWords",
    "BodyContainsWords",
    "SubjectOrBodyContainsWords",
    "FromAddressContainsWords",
)


def _hiding(record: AuditRecord) -> str | None:
    if truthy(record.parameter("DeleteMessage")) or truthy(record.parameter("SoftDeleteMessage")):
        return "deletes"
    folder = record.parameter("MoveToFolder") or ""
    name = folder.replace("/", "\\").rsplit("\\", 1)[-1].rsplit(":", 1)[-1].strip().lower()
    if name in HIDING_FOLDERS:
        return f"moves to {name.title()}"
    return None


def _keywords(record: AuditRecord) -> list[str]:
    words = " ".join((record.parameter(name) or "") for name in KEYWORD_PARAMETERS).lower()
    return [keyword for keyword in KEYWORDS if keyword in words]


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    alerts = []
    for record in admin_records(records, "New-InboxRule", "Set-InboxRule"):
        if record.is_service_actor:
            continue
        hiding = _hiding(record)
        found = _keywords(record) if hiding else []
        if not hiding or not found:
            continue
        mailbox = _rule_mailbox(record)
        rule = record.parameter("Name") or (record.parameter("Identity") or "").rsplit("\\", 1)[-1]
        alerts.append(
            make_alert(
                ID,
                "high",
                [record],
                context,
                f"{record.user_id} made inbox rule {rule!r} on {mailbox} that {hiding} mail containing "
                f"{', '.join(repr(word) for word in found)}: the pattern of an attacker hiding replies and warnings.",
                mailbox=mailbox,
                target=rule.lower() or None,
            )
        )
    return Outcome(tuple(alerts))


DETECTION = Detection(ID, "Inbox rule hiding security mail", "high", (), evaluate)
