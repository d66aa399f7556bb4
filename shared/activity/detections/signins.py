"""Successful sign-ins, as the location-based detections read them (handbook §3.9)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from shared.activity.records import AuditRecord

SIGN_IN_OPERATIONS = frozenset({"userloggedin", "mailboxlogin"})


def sign_ins(records: Iterable[AuditRecord]) -> Iterator[AuditRecord]:
    """Successful Entra ID (`UserLoggedIn`) and mailbox (`MailboxLogin`) sign-ins of people (not Microsoft's
    service accounts), with a client address."""
    for record in records:
        if record.operation.lower() not in SIGN_IN_OPERATIONS or not record.succeeded or not record.result_status:
            continue
        if record.is_service_actor or record.client_ip is None or not record.actor:
            continue
        yield record
