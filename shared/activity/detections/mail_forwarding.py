"""`mail-forwarding`: mail forwarded or redirected to a domain outside the tenant's accepted domains (handbook §3.3).

Mailbox forwarding (`Set-Mailbox`/`Set-MailUser`/`Set-RemoteMailbox`/`Enable-RemoteMailbox` `ForwardingSmtpAddress`,
`ForwardingAddress`), inbox rules (`New-/Set-InboxRule` `ForwardTo`, `ForwardAsAttachmentTo`, `RedirectTo`) and
transport rules (`New-/Set-TransportRule` `BlindCopyTo`, `RedirectMessageTo`). Medium per event; high when another
mailbox forwarded to the same destination within 7 days, or for a transport rule (it takes everyone's mail).
Judged by the values written: clearing forwarding (an empty value) never fires.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from shared.activity.baseline import FORWARDING_WINDOW, Baseline
from shared.activity.detections.base import Context, Detection, Outcome, Severity, admin_records, mailbox_of, make_alert
from shared.activity.records import AuditRecord

ID = "mail-forwarding"
_MAILBOX = ("Set-Mailbox", "Set-MailUser", "Set-RemoteMailbox", "Enable-RemoteMailbox")
_INBOX_RULES = ("New-InboxRule", "Set-InboxRule")
_TRANSPORT_RULES = ("New-TransportRule", "Set-TransportRule")
_PARAMETERS = {
    **dict.fromkeys((name.lower() for name in _MAILBOX), ("ForwardingSmtpAddress", "ForwardingAddress")),
    **dict.fromkeys((name.lower() for name in _INBOX_RULES), ("ForwardTo", "ForwardAsAttachmentTo", "RedirectTo")),
    **dict.fromkeys((name.lower() for name in _TRANSPORT_RULES), ("BlindCopyTo", "RedirectMessageTo")),
}
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


def destinations(value: str) -> list[tuple[str, str]]:
    """(address, domain) for every SMTP address in a forwarding value: `smtp:` prefixes, `;`/`,`-joined lists and
    display-name forms (`"Ann" [SMTP:ann@example.net]`) alike. A recipient named without an address (an object in the
    tenant) gives none."""
    return [(match.group(0).lower(), match.group(1).lower()) for match in _ADDRESS.finditer(value)]


def is_external(domain: str, accepted: frozenset[str]) -> bool:
    return domain not in accepted


def forwarding_addresses(record: AuditRecord) -> list[str]:
    """Every SMTP address a forwarding write names (external or not): the keys of the baseline it may read."""
    found: list[str] = []
    for parameter in _PARAMETERS.get(record.operation.lower(), ()):
        found.extend(address for address, _domain in destinations(record.parameter(parameter) or ""))
    return found


def _rule_mailbox(record: AuditRecord) -> str:
    """An inbox rule's mailbox: -Mailbox, else the part of -Identity before the rule name (`ann@contoso.com\\rule`)."""
    if mailbox := record.parameter("Mailbox"):
        return mailbox.strip()
    identity = record.parameter("Identity") or record.object_id
    return identity.split("\\", 1)[0].strip()


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    seen: dict[str, dict[str, datetime]] = {}
    alerts = []
    for record in admin_records(records, *_MAILBOX, *_INBOX_RULES, *_TRANSPORT_RULES):
        operation = record.operation.lower()
        transport = record.operation in _TRANSPORT_RULES or operation in {n.lower() for n in _TRANSPORT_RULES}
        if operation in {n.lower() for n in _INBOX_RULES}:
            mailbox = _rule_mailbox(record)
        elif transport:
            mailbox = "(all mail: transport rule)"
        else:
            mailbox = mailbox_of(record)
        for parameter in _PARAMETERS[operation]:
            value = record.parameter(parameter)
            if not value:
                continue
            for address, domain in destinations(value):
                if not is_external(domain, context.accepted_domains):
                    continue
                key = mailbox.lower()
                earlier = {**baseline.forwarding.get(address, {}), **seen.get(address, {})}
                others = sorted(
                    other
                    for other, when in earlier.items()
                    if other != key and abs(record.creation_time - when) <= FORWARDING_WINDOW
                )
                severity: Severity = "high" if transport or others else "medium"
                why = (
                    f" {len(others)} other mailbox(es) forward there within 7 days: {', '.join(others)}."
                    if others
                    else ""
                )
                accepted = (
                    ""
                    if context.accepted_domains
                    else " (the tenant's accepted domains are not known: every domain counts as external)"
                )
                alerts.append(
                    make_alert(
                        ID,
                        severity,
                        [record],
                        context,
                        f"{record.user_id} set {parameter} on {mailbox} to {address}, outside the accepted domains"
                        f"{accepted} ({record.operation}).{why}",
                        mailbox=mailbox if not transport else None,
                        target=address,
                        key=(record.id, parameter.lower(), address),
                    )
                )
                mine = seen.setdefault(address, {})
                mine[key] = max(mine.get(key, record.creation_time), record.creation_time)
    if not seen:
        return Outcome(tuple(alerts))
    forwarding = dict(baseline.forwarding)
    for address, mailboxes in seen.items():
        merged = dict(forwarding.get(address, {}))
        for mailbox, when in mailboxes.items():
            merged[mailbox] = max(merged.get(mailbox, when), when)
        forwarding[address] = merged
    return Outcome(tuple(alerts), {"forwarding": forwarding})


DETECTION = Detection(ID, "Mail forwarded outside the organisation", "medium", ("forwarding",), evaluate)
