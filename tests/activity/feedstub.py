"""An in-process `FeedSource` for the ingest pass's unit tests: windows and blobs served from data.

It keeps the API's rules the pass must respect (a listing window of at most 24 hours, never starting more than 7 days
back, half-open on `contentCreated`) and asserts them, and it can make a blob fail, expire or be listed late.
It is no emulator of the wire (that is shared/activity/feed.py's and the emulator's business): it tests the pass.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.activity.errors import FeedContentExpired, FeedError

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ref:
    """The shape of shared.activity.feed.ContentRef."""

    content_type: str
    content_id: str
    content_uri: str
    created: datetime
    expiration: datetime | None


@dataclass
class Blob:
    ref: Ref
    records: list[dict[str, Any]]
    listed_from: datetime  # the listing shows the blob only from then on (late listing)
    fail_times: int = 0  # the next fetches that fail (-1: every one)
    expired: bool = False
    payload: Any = None  # served instead of the records (a body that is not a JSON array)


@dataclass
class StubFeed:
    now: datetime = T0
    blobs: dict[str, Blob] = field(default_factory=dict)
    listings: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    fetches: list[str] = field(default_factory=list)
    starts: list[tuple[str, datetime | None]] = field(default_factory=list)
    list_fails: int = 0  # the next listings that fail
    subscription_fails: int = 0

    def add(
        self,
        content_id: str,
        created: datetime,
        records: list[dict[str, Any]],
        *,
        content_type: str = "Audit.Exchange",
        listed_from: datetime | None = None,
        fail_times: int = 0,
        expired: bool = False,
        payload: Any = None,
    ) -> Blob:
        ref = Ref(
            content_type, content_id, f"https://feed.test/blob/{content_id}", created, created + timedelta(days=7)
        )
        blob = Blob(ref, records, listed_from or created, fail_times, expired, payload)
        self.blobs[content_id] = blob
        return blob

    # -- the FeedSource interface

    def ensure_subscription(self, content_type: str, last_started: datetime | None, now: datetime) -> datetime | None:
        self.starts.append((content_type, last_started))
        if self.subscription_fails:
            self.subscription_fails -= 1
            raise FeedError("subscriptions/start: HTTP 503 (retries exhausted)")
        return now if last_started is None else None

    def list_content(self, content_type: str, start: datetime, end: datetime) -> Iterator[Ref]:
        assert start < end, (start, end)
        assert end - start <= timedelta(hours=24), "a listing window longer than 24 hours"
        assert start >= self.now - timedelta(days=7), "a listing that starts more than 7 days back"
        self.listings.append((content_type, start, end))
        if self.list_fails:
            self.list_fails -= 1
            raise FeedError("subscriptions/content: HTTP 500 AF50000 (retries exhausted)")
        visible = [
            blob.ref
            for blob in self.blobs.values()
            if blob.ref.content_type == content_type
            and start <= blob.ref.created < end
            and blob.listed_from <= self.now
        ]
        yield from sorted(visible, key=lambda ref: ref.content_id, reverse=True)  # in no particular order

    def fetch(self, ref: Ref) -> list[dict[str, Any]]:
        self.fetches.append(ref.content_id)
        blob = self.blobs[ref.content_id]
        if blob.expired or ref.created < self.now - timedelta(days=7):
            raise FeedContentExpired(f"AF20051: content {ref.content_id} has expired")
        if blob.fail_times:
            blob.fail_times -= 1 if blob.fail_times > 0 else 0
            raise FeedError("blob: HTTP 500 AF50000 (retries exhausted)")
        if blob.payload is not None:
            return blob.payload  # type: ignore[no-any-return]
        return copy.deepcopy(blob.records)


def record(record_id: str, when: datetime, **fields: Any) -> dict[str, Any]:
    """A record as the feed serves it: `CreationTime` without a zone (UTC), as real records have it."""
    return {
        "Id": record_id,
        "CreationTime": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "RecordType": 2,
        "Operation": "MailItemsAccessed",
        "UserId": "alice@contoso.com",
        **fields,
    }
