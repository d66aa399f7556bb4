"""The activity watch's state between passes: one interface, two backends that must behave the same.

`StateStore` is what the ingest pass, the detections and (next issue) the canary use; the backends are
shared.activity.sqlite_store (a file on disk, for the command line) and shared.activity.table_store (Azure Table
Storage in the app's storage account, for the Function App). One test suite (tests/activity/test_state_store.py)
runs against both, so they cannot drift.

Per tenant it holds:
- per content type: the checkpoint (`listed_until`: the listing is complete before it) and when the subscription was
  last started (at most one start per 15 minutes, handbook §1.9.6);
- processed `contentId`s and seen record `Id`s, each with when it was last marked (kept `SEEN_RETENTION`, then
  pruned);
- blobs that failed, with their attempt count and last error, until they are read or given up as a gap;
- named gaps: content that can no longer be read, and why;
- per-user baselines (one small JSON document per user key), alert ids already reported, and a key/value area.

All times are timezone-aware UTC datetimes; a naive datetime is refused (it would silently mean local time).
Implementations raise `StateError` (message without secrets) when the store cannot be read or written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

SEEN_RETENTION = timedelta(days=8)  # duplicates arrive days later by design (handbook §1.7); content lives 7 days
ALERT_RETENTION = timedelta(days=90)  # an alert id outlives the records it was raised on
BASELINE_MAX_BYTES = 30_000  # a Table Storage string property holds 64 KiB of UTF-16; both backends enforce this
VALUE_MAX_BYTES = 30_000  # the same for a key/value value
KEY_MAX_CHARS = 256  # user keys, alert ids, key/value keys, content ids (real contentIds are ~100 characters)

GapReason = Literal["expired-before-read", "unreadable", "outage-beyond-retention"]
GAP_REASONS: dict[GapReason, str] = {
    "expired-before-read": "content expired before it was read",
    "unreadable": "content could not be read after repeated attempts",
    "outage-beyond-retention": "content expired before it was read (the watch did not run for more than 7 days)",
}


class StateError(Exception):
    """The watch state could not be read or written; the message says why, without secrets."""


class BaselineTooLarge(StateError):
    """A baseline document above BASELINE_MAX_BYTES: refused before anything is written (the caller may shrink it).
    `key`: the user key of the document, where the store knows it."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class FailedBlob:
    """A blob that could not be fetched or parsed: retried on the next pass, reported until read or given up."""

    content_type: str
    content_id: str
    created: datetime  # the blob's contentCreated: the checkpoint never passes it while the blob is unread
    attempts: int
    last_error: str
    first_failed: datetime
    last_failed: datetime


@dataclass(frozen=True)
class Gap:
    """Content that was lost: named (reason), placed (content type, window or blob) and dated."""

    content_type: str
    reason: GapReason
    start: datetime  # the window lost, or the blob's contentCreated twice
    end: datetime
    detail: str  # e.g. the last error of an unreadable blob; never a URL or a token
    recorded: datetime
    content_id: str | None = None

    @property
    def key(self) -> str:
        """Identity of the gap: one blob, or one window of one content type (recording it twice is a no-op)."""
        if self.content_id is not None:
            return f"{self.content_type}|{self.content_id}"
        return f"{self.content_type}|{encode_time(self.start)}|{encode_time(self.end)}"

    @property
    def message(self) -> str:
        what = f"blob {self.content_id}" if self.content_id else f"{encode_time(self.start)} to {encode_time(self.end)}"
        return f"{self.content_type}: {GAP_REASONS[self.reason]} ({what}){f': {self.detail}' if self.detail else ''}"


class StateStore(Protocol):
    """The watch's state for any number of tenants; every method names the tenant first."""

    # -- per content type
    def checkpoint(self, tenant: str, content_type: str) -> datetime | None:
        """End of the listing known to be complete (None: never read)."""
        ...

    def set_checkpoint(self, tenant: str, content_type: str, listed_until: datetime) -> None: ...

    def subscription_started(self, tenant: str, content_type: str) -> datetime | None: ...

    def set_subscription_started(self, tenant: str, content_type: str, started: datetime) -> None: ...

    # -- content blobs and records
    def known_content(self, tenant: str, content_ids: Iterable[str]) -> set[str]:
        """The ids among `content_ids` already processed (or given up as a gap)."""
        ...

    def known_records(self, tenant: str, record_ids: Iterable[str]) -> set[str]:
        """The ids among `record_ids` already handed to the detections."""
        ...

    def mark_processed(self, tenant: str, content_id: str, record_ids: Iterable[str], seen: datetime) -> None:
        """The blob was processed: its new records are seen, then the blob itself (in that order, so a crash in
        between re-reads the blob and finds its records known) and any failure entry for it is cleared."""
        ...

    # -- failures and gaps
    def failures(self, tenant: str) -> list[FailedBlob]:
        """Outstanding failed blobs, oldest `created` first."""
        ...

    def record_failure(
        self, tenant: str, content_type: str, content_id: str, created: datetime, error: str, at: datetime
    ) -> FailedBlob:
        """One more failed attempt on the blob (attempts 1 the first time); the entry as it is now."""
        ...

    def clear_failure(self, tenant: str, content_id: str) -> None: ...

    def add_gap(self, tenant: str, gap: Gap) -> bool:
        """Record a gap; False when the same gap (`Gap.key`) was recorded before (it is kept as it was)."""
        ...

    def gaps(self, tenant: str, since: datetime) -> list[Gap]:
        """Gaps recorded at or after `since`, oldest first."""
        ...

    # -- detections
    def baseline(self, tenant: str, user_key: str) -> dict[str, Any] | None:
        """The user's baseline document (None: no baseline yet)."""
        ...

    def put_baseline(self, tenant: str, user_key: str, document: Mapping[str, Any]) -> None:
        """Replace the user's baseline: plain JSON, at most BASELINE_MAX_BYTES as UTF-8 (StateError beyond)."""
        ...

    def put_baselines(self, tenant: str, documents: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace several baselines in as few writes as the backend allows (one transaction in SQLite). Every
        document is checked first: BaselineTooLarge (naming the key) before anything is written."""
        ...

    def claim_alerts(self, tenant: str, alert_ids: Iterable[str], at: datetime) -> set[str]:
        """Record the alert ids; return those never recorded before (each id is claimed once, even by two
        processes at the same time): these are the alerts to report."""
        ...

    # -- key/value area (the canary ledger, the pass's own bookkeeping, alert details for the evidence report)
    def value(self, tenant: str, key: str) -> str | None: ...

    def put_value(self, tenant: str, key: str, value: str) -> None: ...

    def delete_value(self, tenant: str, key: str) -> None: ...

    def values(self, tenant: str, prefix: str = "") -> dict[str, str]:
        """Every key starting with `prefix` and its value."""
        ...

    # -- housekeeping
    def prune(self, tenant: str, *, seen_before: datetime, alerts_before: datetime) -> int:
        """Forget content and record ids last marked before `seen_before`, alert ids before `alerts_before`;
        the number of entries removed."""
        ...

    def close(self) -> None: ...


# ---- helpers both backends use, so they encode and check the same way ----------------------------------------


def utc(moment: datetime) -> datetime:
    """The moment in UTC; ValueError for a naive datetime (it would silently mean local time)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("state times must be timezone-aware")
    return moment.astimezone(UTC)


def encode_time(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601 (microseconds, `Z`): sorts as text in both backends."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def check_key(kind: str, key: str) -> str:
    """A key as given, or StateError when it is unusable (empty, too long, not a string)."""
    if not isinstance(key, str) or not key or len(key) > KEY_MAX_CHARS:
        raise StateError(f"{kind} must be a non-empty string of at most {KEY_MAX_CHARS} characters")
    return key


def baseline_texts(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Each key checked and each document encoded (baseline_json), all before any write; BaselineTooLarge names the
    key of a document that is too large."""
    texts = {}
    for key, document in documents.items():
        check_key("user key", key)
        try:
            texts[key] = baseline_json(document)
        except BaselineTooLarge as exc:
            raise BaselineTooLarge(str(exc), key) from None
    return texts


def baseline_json(document: Mapping[str, Any]) -> str:
    """The baseline as compact JSON; StateError when it is not plain JSON or larger than BASELINE_MAX_BYTES."""
    try:
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)  # unsorted: cheaper
    except (TypeError, ValueError) as exc:
        raise StateError(f"a baseline must be plain JSON ({type(exc).__name__})") from None
    if not isinstance(document, Mapping):
        raise StateError("a baseline must be a JSON object")
    if len(text.encode("utf-8", errors="backslashreplace")) > BASELINE_MAX_BYTES:
        raise BaselineTooLarge(f"a baseline must be at most {BASELINE_MAX_BYTES} bytes as JSON; keep it small")
    return text


def check_value(value: str) -> str:
    """A key/value value as given, or StateError when it is not a string or larger than VALUE_MAX_BYTES."""
    if not isinstance(value, str):
        raise StateError("a key/value value must be a string (encode JSON yourself)")
    if len(value.encode("utf-8", errors="backslashreplace")) > VALUE_MAX_BYTES:
        raise StateError(f"a key/value value must be at most {VALUE_MAX_BYTES} bytes")
    return value


def error_text(error: str) -> str:
    """A failure's last error as stored: one line, at most 500 characters."""
    return " ".join(str(error).split())[:500]
