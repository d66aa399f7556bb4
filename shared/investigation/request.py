"""What `search` is asked for, checked before anything is sent, and the Graph query body for one time window. Pure.

Times are ISO 8601, UTC unless they carry an offset (as Search-UnifiedAuditLog reads them, activity-feed.md §4.5);
`now` is accepted too. A window must end after it starts, end no later than now, and start no earlier than the
retention (AUDIT_SEARCH_MAX_DAYS days back): the audit log keeps nothing older, so such a window could never be
complete. Record types must be members of Graph's auditLogRecordType (record_types.py); IP addresses must parse.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.investigation.record_types import canonical_record_type

FUTURE_TOLERANCE = timedelta(minutes=5)  # clock skew between this machine and the service
MAX_FILTER_VALUES = 50  # per filter list: a longer list is almost certainly a mistake (a pasted file)


def format_time(moment: datetime) -> str:
    """UTC with milliseconds and Z, as Graph writes times: 2026-05-01T10:00:00.000Z."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def parse_time(text: str, now: datetime) -> datetime | None:
    """An ISO 8601 time (UTC unless it has an offset; a bare date is midnight UTC) or `now`; None when unreadable."""
    value = text.strip()
    if value.lower() == "now":
        return now
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True, order=True)
class Window:
    """A half-open time window [start, end) in UTC."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def halves(self) -> tuple[Window, Window]:
        """The two halves, split on a whole second when the window is longer than two seconds."""
        middle = self.start + self.duration / 2
        if self.duration > timedelta(seconds=2):
            middle = middle.replace(microsecond=0)
        return Window(self.start, middle), Window(middle, self.end)

    def as_json(self) -> dict[str, str]:
        return {"start": format_time(self.start), "end": format_time(self.end)}

    def __str__(self) -> str:
        return f"{format_time(self.start)} – {format_time(self.end)}"


@dataclass(frozen=True)
class SearchRequest:
    """One investigation search: the window and the filters (every list may be empty: no filter)."""

    window: Window
    operations: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()  # matched here, on the records' MailboxOwnerUPN: Graph has no such filter
    record_types: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    keyword: str | None = None

    def filters(self) -> dict[str, Any]:
        """The filters as the manifest records them."""
        return {
            "start": format_time(self.window.start),
            "end": format_time(self.window.end),
            "operations": list(self.operations),
            "users": list(self.users),
            "mailboxes": list(self.mailboxes),
            "record_types": list(self.record_types),
            "ip_addresses": list(self.ips),
            "keyword": self.keyword,
        }


@dataclass
class Parsed:
    request: SearchRequest | None
    problems: list[str] = field(default_factory=list)


def _names(values: Sequence[str] | None, option: str, problems: list[str]) -> tuple[str, ...]:
    """The values of a repeatable option, trimmed, repeats dropped; empty ones and inner white space are problems."""
    cleaned = tuple(dict.fromkeys(v.strip() for v in values or () if v.strip()))
    if any(not v.strip() for v in values or ()):
        problems.append(f"{option}: an empty value")
    spaced = [v for v in cleaned if any(c.isspace() for c in v)]
    if spaced:
        problems.append(f"{option}: a value with white space in it ({spaced[0][:60]!r})")
    if len(cleaned) > MAX_FILTER_VALUES:
        problems.append(f"{option}: at most {MAX_FILTER_VALUES} values")
    return cleaned


def parse_request(
    *,
    start: str,
    end: str,
    operations: Sequence[str] | None = None,
    users: Sequence[str] | None = None,
    mailboxes: Sequence[str] | None = None,
    record_types: Sequence[str] | None = None,
    ips: Sequence[str] | None = None,
    keyword: str | None = None,
    now: datetime,
    max_days: float,
) -> Parsed:
    """The request, or every problem with the arguments (each names its option)."""
    problems: list[str] = []
    begin, finish = parse_time(start, now), parse_time(end, now)
    if begin is None:
        problems.append(f"--start: {start[:60]!r} is not an ISO 8601 time (e.g. 2026-05-01T08:00:00Z) or 'now'")
    if finish is None:
        problems.append(f"--end: {end[:60]!r} is not an ISO 8601 time (e.g. 2026-05-02T08:00:00Z) or 'now'")
    if begin is not None and finish is not None:
        oldest = now - timedelta(days=max_days)
        if finish <= begin:
            problems.append(f"--end ({format_time(finish)}) must be after --start ({format_time(begin)})")
        if finish > now + FUTURE_TOLERANCE:
            problems.append(f"--end ({format_time(finish)}) is in the future; use 'now' or an earlier time")
        if begin < oldest:
            problems.append(
                f"--start ({format_time(begin)}) is beyond the audit log's retention: at most {max_days:g} days "
                f"back (from {format_time(oldest)}; AUDIT_SEARCH_MAX_DAYS sets it if your tenant keeps records "
                "longer)"
            )
    canonical: list[str] = []
    for given in _names(record_types, "--record-type", problems):
        name = canonical_record_type(given)
        if name is None:
            problems.append(
                f"--record-type: {given[:60]!r} is not an audit log record type (e.g. ExchangeItem, ExchangeAdmin, "
                "ExchangeItemGroup, AzureActiveDirectoryStsLogon; the list: shared/investigation/record_types.py)"
            )
        elif name not in canonical:
            canonical.append(name)
    addresses: list[str] = []
    for given in _names(ips, "--ip", problems):
        try:
            addresses.append(str(ipaddress.ip_address(given)))
        except ValueError:
            problems.append(f"--ip: {given[:60]!r} is not an IPv4 or IPv6 address")
    if keyword is not None and not keyword.strip():
        problems.append("--keyword: empty")
    request = SearchRequest(
        window=Window(begin, finish) if begin and finish else Window(now, now),
        operations=_names(operations, "--operation", problems),
        users=tuple(u.lower() for u in _names(users, "--user", problems)),
        mailboxes=tuple(m.lower() for m in _names(mailboxes, "--mailbox", problems)),
        record_types=tuple(canonical),
        ips=tuple(addresses),
        keyword=keyword.strip() if keyword else None,
    )
    return Parsed(None if problems else request, problems)


def query_body(request: SearchRequest, window: Window, display_name: str) -> dict[str, Any]:
    """The POST body of one audit log query (activity-feed.md §4.2) for `window`; empty filters are left out."""
    body: dict[str, Any] = {
        "displayName": display_name,
        "filterStartDateTime": format_time(window.start),
        "filterEndDateTime": format_time(window.end),
    }
    if request.operations:
        body["operationFilters"] = list(request.operations)
    if request.users:
        body["userPrincipalNameFilters"] = list(request.users)
    if request.record_types:
        body["recordTypeFilters"] = list(request.record_types)
    if request.ips:
        body["ipAddressFilters"] = list(request.ips)
    if request.keyword:
        body["keywordFilter"] = request.keyword
    return body
