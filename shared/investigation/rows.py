"""Records as the export writes them: one JSON line, or one CSV row (common columns, the raw record last). Pure.

A Graph auditLogRecord (activity-feed.md §4.2) has the common fields at the top and the service's own record in
`auditData`; the mailbox owner of a mailbox record is `auditData.MailboxOwnerUPN` (§2.3), which is what
`--mailbox` matches, here, as Graph has no such filter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS: tuple[str, ...] = (
    "id",
    "createdDateTime",
    "auditLogRecordType",
    "operation",
    "service",
    "userPrincipalName",
    "userId",
    "userType",
    "clientIp",
    "objectId",
    "mailboxOwnerUPN",
    "organizationId",
    "record",  # the raw record, as JSON: the evidence; the columns before it are for reading
)
# A cell starting with one of these is a formula to a spreadsheet (CSV injection): such a common column gets a
# leading apostrophe. The raw record in the last column is never changed (it starts with `{`).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def record_id(record: Mapping[str, Any]) -> str | None:
    """The record's id (Graph's `id`; the audit record's `Id` inside auditData as a fallback), or None."""
    value = record.get("id")
    if not value and isinstance(record.get("auditData"), Mapping):
        value = record["auditData"].get("Id")
    return str(value) if value else None


def mailbox_owner(record: Mapping[str, Any]) -> str | None:
    data = record.get("auditData")
    owner = data.get("MailboxOwnerUPN") if isinstance(data, Mapping) else None
    return str(owner) if owner else None


def matches_mailboxes(record: Mapping[str, Any], mailboxes: Sequence[str]) -> bool:
    """True without a --mailbox filter; else when the record's mailbox owner is one of them (case-insensitive)."""
    if not mailboxes:
        return True
    owner = mailbox_owner(record)
    return owner is not None and owner.lower() in mailboxes


def json_line(record: Mapping[str, Any]) -> str:
    """The record as one line of JSON Lines (UTF-8, keys as received)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_row(record: Mapping[str, Any]) -> list[str]:
    """The CSV row of a record: the common columns (COLUMNS), then the raw record as JSON."""
    values = {name: record.get(name) for name in COLUMNS[:-1]}
    values["id"] = record_id(record)
    values["mailboxOwnerUPN"] = mailbox_owner(record)
    return [*(_cell(values[name]) for name in COLUMNS[:-1]), json.dumps(record, ensure_ascii=False)]
