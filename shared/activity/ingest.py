"""One ingest pass for one tenant: nothing lost, nothing twice (handbook activity-feed.md §1.7-1.9).

Per content type:

1. Ensure the subscription (the feed client starts it at most once per 15 minutes; we keep when it last did).
2. Start at the checkpoint (`listed_until`): the end of the last window whose listing and every blob were processed.
   The first pass starts `WATCH_FIRST_LOOKBACK_HOURS` back (default 24). The feed keeps content 7 days: nothing
   older than `now - 7 days + 30 minutes` is ever asked for (handbook §1.9.7), and a checkpoint older than that,
   after an outage, is a named gap ("content expired before it was read") before the pass moves on.
3. Re-list `OVERLAP` (12 h) before the checkpoint, then up to now, in windows of at most 24 hours. The listing filters
   on `contentCreated`, and nothing promises a blob is listed as soon as it is created (late and partial listings,
   first content up to 12 hours after a subscription starts: §1.2, §1.7, §1.8). The handbook's sketch (§1.9.2) takes
   2 hours; we take the 12 hours the documentation itself names as a delivery delay, because re-listing costs one
   listing request per pass and no blob is fetched twice (known `contentId`s are skipped), while a blob missed by a
   too-short overlap is lost for good.
4. Fetch each new blob, de-duplicate its records by `Id` (state, at least 8 days: duplicates arrive days later by
   design, §1.7) and hand the new ones to the detections (`on_records`), then mark the records and the blob processed.
   A crash between the two re-delivers that blob's records on the next pass (alert ids are claimed once, so nothing
   is reported twice); marking first could lose them, so it is never done.
5. Advance the checkpoint only past windows whose every blob was processed, and never past a blob that failed.

A blob that cannot be fetched or parsed is recorded (attempts, last error), reported in every pass result and retried
by the next pass (the checkpoint holds before it, so its window is listed again). After `MAX_ATTEMPTS` failed attempts
it is given up as a named gap, but only in a pass in which other blobs were read: a feed that fails everything (an
outage, a lost permission) must not turn the whole backlog into gaps. Content the feed says expired (AF20051,
`FeedContentExpired`) is a named gap at once. The run budget (time and requests) stops the pass between requests;
what was processed stays processed and the next pass resumes from the checkpoint.

This module does no I/O itself: the feed and the store are passed in (`FeedSource`, `StateStore`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from shared.activity.errors import FeedContentExpired, FeedError
from shared.activity.state import (
    ALERT_RETENTION,
    SEEN_RETENTION,
    FailedBlob,
    Gap,
    StateStore,
    decode_time,
    encode_time,
    error_text,
    utc,
)

WINDOW = timedelta(hours=24)  # the API's longest listing window (§1.3)
RETENTION = timedelta(days=7)  # contentExpiration = contentCreated + 7 days (§1.2)
RETENTION_MARGIN = timedelta(minutes=30)  # never build a start older than 7 days - 30 minutes (§1.9.7)
OVERLAP = timedelta(hours=12)  # why 12 h: the module docstring, point 3
DEFAULT_FIRST_LOOKBACK = timedelta(hours=24)
MAX_FIRST_LOOKBACK = timedelta(hours=168)
MAX_ATTEMPTS = 5  # failed attempts on one blob before it is given up as a gap (one attempt per pass)
PRUNE_EVERY = timedelta(hours=6)
PRUNED_AT_KEY = "ingest/pruned_at"  # in the store's key/value area
NEWEST_RECORD_KEY = "ingest/newest_record"


class ContentRefLike(Protocol):
    """What the pass reads of the feed client's `ContentRef` (shared.activity.feed): its listing entry of a blob."""

    @property
    def content_type(self) -> str: ...

    @property
    def content_id(self) -> str: ...

    @property
    def content_uri(self) -> str: ...

    @property
    def created(self) -> datetime: ...

    @property
    def expiration(self) -> datetime | None: ...


class FeedSource[RefT: ContentRefLike](Protocol):
    """The feed client's interface as the pass uses it (shared.activity.feed implements it over HTTPS).

    Each method raises `FeedError` when the feed cannot answer after the client's own retries, and `fetch` raises
    `FeedContentExpired` for content that is gone (AF20051).
    """

    def ensure_subscription(self, content_type: str, last_started: datetime | None, now: datetime) -> datetime | None:
        """Make sure the subscription is enabled; the time it was started now, or None when no start was needed."""
        ...

    def list_content(self, content_type: str, start: datetime, end: datetime) -> Iterator[RefT]:
        """Every blob with `start <= contentCreated < end` (at most 24 hours), all pages."""
        ...

    def fetch(self, ref: RefT) -> list[dict[str, Any]]:
        """The blob's records."""
        ...


RecordSink = Callable[[Sequence[Mapping[str, Any]]], None]


class RunBudget:
    """A bounded pass: at most `requests` feed requests and `seconds` of wall time (monotonic clock)."""

    def __init__(self, *, seconds: float, requests: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deadline = clock() + seconds
        self.limit = requests
        self.used = 0
        self.exhausted = False

    def take(self) -> bool:
        """Spend one request; False (and exhausted from then on) when the budget has run out."""
        if self.exhausted or self.used >= self.limit or self._clock() >= self._deadline:
            self.exhausted = True
            return False
        self.used += 1
        return True


@dataclass(frozen=True)
class PassResult:
    """What one pass did; `failed_blobs` are those still to retry after it, `gaps` those recorded by it."""

    tenant_id: str
    now: datetime
    records_processed: int  # new records handed to the detections
    records_duplicate: int  # records whose Id was seen before (or twice in this pass)
    records_without_id: int  # handed over too, but they cannot be de-duplicated
    content_blobs: int  # blobs fetched and processed
    content_skipped: int  # blobs listed again (overlap) and skipped as known
    failed_blobs: tuple[FailedBlob, ...]
    gaps: tuple[Gap, ...]
    feed_lag_minutes: float | None  # now - the newest record time ever seen (None: no record yet)
    errors: tuple[str, ...]
    budget_exhausted: bool
    requests: int
    checkpoints: Mapping[str, datetime | None]
    subscriptions_started: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Every content type was read up to now, without error, within the budget, with no blob left to retry."""
        return not (self.errors or self.budget_exhausted or self.failed_blobs)


@dataclass
class _Tally:
    processed: int = 0
    duplicate: int = 0
    without_id: int = 0
    blobs: int = 0
    skipped: int = 0
    fetched_ok: int = 0  # successful fetches this pass: the feed is answering
    gaps: list[Gap] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    newest: datetime | None = None
    attempted: set[str] = field(default_factory=set)  # content ids fetched (or tried) in this pass
    given_up_later: list[tuple[ContentRefLike, FailedBlob]] = field(default_factory=list)
    progress: dict[str, tuple[datetime, dict[str, datetime]]] = field(default_factory=dict)  # advanced, outstanding


def run_pass[RefT: ContentRefLike](
    tenant: str,
    feed: FeedSource[RefT],
    store: StateStore,
    on_records: RecordSink,
    *,
    content_types: Sequence[str],
    budget: RunBudget,
    now: datetime | None = None,
    first_lookback: timedelta = DEFAULT_FIRST_LOOKBACK,
    overlap: timedelta = OVERLAP,
    max_attempts: int = MAX_ATTEMPTS,
) -> PassResult:
    """One pass over every content type for `tenant`; state is written as it goes, so a stop keeps the progress.

    Store errors (StateError) and errors raised by `on_records` propagate: the pass stops there, and whatever was
    not marked processed is read again by the next pass.
    """
    now = utc(now or datetime.now(UTC))
    lookback = min(max(first_lookback, timedelta(0)), MAX_FIRST_LOOKBACK)
    tally = _Tally()
    for content_type in _most_behind_first(tenant, store, content_types):
        if budget.exhausted:
            break
        _content_type_pass(
            tenant, content_type, feed, store, on_records, tally, budget, now, lookback, overlap, max_attempts
        )
    for ref, failed in tally.given_up_later:  # deferred: only once some blob was read in this pass
        if tally.fetched_ok:
            _give_up(tenant, store, tally, ref, failed, now)
            advanced, outstanding = tally.progress[ref.content_type]
            outstanding.pop(ref.content_id, None)
            if (candidate := min([advanced, *outstanding.values()])) != store.checkpoint(tenant, ref.content_type):
                store.set_checkpoint(tenant, ref.content_type, candidate)
    checkpoints = {content_type: store.checkpoint(tenant, content_type) for content_type in content_types}
    _prune(tenant, store, now)
    return PassResult(
        tenant_id=tenant,
        now=now,
        records_processed=tally.processed,
        records_duplicate=tally.duplicate,
        records_without_id=tally.without_id,
        content_blobs=tally.blobs,
        content_skipped=tally.skipped,
        failed_blobs=tuple(store.failures(tenant)),
        gaps=tuple(tally.gaps),
        feed_lag_minutes=_lag(tenant, store, tally.newest, now),
        errors=tuple(tally.errors),
        budget_exhausted=budget.exhausted,
        requests=budget.used,
        checkpoints=checkpoints,
        subscriptions_started=tuple(tally.started),
    )


def _most_behind_first(tenant: str, store: StateStore, content_types: Sequence[str]) -> list[str]:
    """The content types in the order their budget is spent: never read first, then the oldest checkpoint, so a
    pass that stops at its budget cannot starve the same content type pass after pass (ties keep the setting's
    order)."""
    checkpoints = {content_type: store.checkpoint(tenant, content_type) for content_type in content_types}
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(dict.fromkeys(content_types), key=lambda content_type: checkpoints[content_type] or oldest)


def windows(start: datetime, end: datetime, size: timedelta = WINDOW) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive half-open windows `[s, e)` of at most `size` covering `[start, end)`."""
    while start < end:
        stop = min(start + size, end)
        yield start, stop
        start = stop


def _content_type_pass[RefT: ContentRefLike](
    tenant: str,
    content_type: str,
    feed: FeedSource[RefT],
    store: StateStore,
    on_records: RecordSink,
    tally: _Tally,
    budget: RunBudget,
    now: datetime,
    lookback: timedelta,
    overlap: timedelta,
    max_attempts: int,
) -> None:
    if not budget.take():
        return
    try:
        started = feed.ensure_subscription(content_type, store.subscription_started(tenant, content_type), now)
    except FeedError as exc:
        tally.errors.append(f"{content_type}: the subscription could not be ensured: {error_text(str(exc))}")
        return
    if started is not None:
        store.set_subscription_started(tenant, content_type, utc(started))
        tally.started.append(content_type)

    earliest = now - RETENTION + RETENTION_MARGIN
    checkpoint = store.checkpoint(tenant, content_type)
    if checkpoint is None:  # first pass: no overlap before where we begin
        base = listing_start = max(now - lookback, earliest)
        store.set_checkpoint(tenant, content_type, base)  # a first pass cut short resumes from here, not from later
    else:
        base = min(checkpoint, now)
        if base < earliest:  # an outage longer than the feed keeps content
            _gap(tenant, store, tally, Gap(content_type, "outage-beyond-retention", base, earliest, "", now))
            base = earliest
            store.set_checkpoint(tenant, content_type, base)
        listing_start = max(base - overlap, earliest)
    current = store.checkpoint(tenant, content_type) or base

    outstanding: dict[str, datetime] = {}  # failed blobs of this content type not yet read or given up
    for failed in store.failures(tenant):
        if failed.content_type != content_type:
            continue
        if failed.created < earliest:  # it failed until it expired: the feed will not serve it any more
            detail = f"it failed {failed.attempts} time(s), last: {failed.last_error}"
            _gap(tenant, store, tally, _blob_gap(content_type, "expired-before-read", failed, detail, now))
            store.clear_failure(tenant, failed.content_id)
        else:
            outstanding[failed.content_id] = failed.created

    def hold(candidate: datetime) -> datetime:
        """The checkpoint never passes a blob that is still to be read: it stops at the oldest one's contentCreated."""
        return min([candidate, *outstanding.values()])

    advanced = base
    for start, end in windows(listing_start, now):
        if not _window(
            tenant, content_type, start, end, feed, store, on_records, tally, budget, now, outstanding, max_attempts
        ):
            break  # the listing failed or the budget ran out: later windows would leave a hole behind the checkpoint
        advanced = max(advanced, end)
        if (candidate := hold(advanced)) != current:
            store.set_checkpoint(tenant, content_type, candidate)
            current = candidate
    if (held := hold(current)) != current:  # a failure listed in no window of this pass still holds it
        store.set_checkpoint(tenant, content_type, held)
    tally.progress[content_type] = (advanced, outstanding)


def _window[RefT: ContentRefLike](
    tenant: str,
    content_type: str,
    start: datetime,
    end: datetime,
    feed: FeedSource[RefT],
    store: StateStore,
    on_records: RecordSink,
    tally: _Tally,
    budget: RunBudget,
    now: datetime,
    outstanding: dict[str, datetime],
    max_attempts: int,
) -> bool:
    """List one window and try each of its new blobs once: True when done (failed blobs are in `outstanding`),
    False when the window could not be listed or the budget ran out (stop this content type)."""
    if not budget.take():
        return False
    try:
        listed = list(feed.list_content(content_type, start, end))
    except FeedError as exc:
        tally.errors.append(
            f"{content_type}: listing {encode_time(start)} to {encode_time(end)} failed: {error_text(str(exc))}"
        )
        return False
    refs = sorted({ref.content_id: ref for ref in listed}.values(), key=lambda ref: (utc(ref.created), ref.content_id))
    known = store.known_content(tenant, [ref.content_id for ref in refs])
    tally.skipped += sum(1 for ref in refs if ref.content_id in known)
    for ref in refs:
        if ref.content_id in known or ref.content_id in tally.attempted:  # listed twice in this pass: tried once
            continue
        if not budget.take():
            return False
        tally.attempted.add(ref.content_id)
        try:
            records = _records(feed.fetch(ref))
        except FeedContentExpired as exc:
            _gap(tenant, store, tally, _ref_gap(ref, "expired-before-read", error_text(str(exc)), now))
            store.mark_processed(tenant, ref.content_id, [], now)
            outstanding.pop(ref.content_id, None)
            continue
        except (FeedError, _NotRecords) as exc:
            failed = store.record_failure(tenant, content_type, ref.content_id, utc(ref.created), str(exc), now)
            if failed.attempts >= max_attempts:
                if tally.fetched_ok:
                    _give_up(tenant, store, tally, ref, failed, now)
                    outstanding.pop(ref.content_id, None)
                    continue
                tally.given_up_later.append((ref, failed))
            outstanding[ref.content_id] = utc(ref.created)
            continue
        tally.fetched_ok += 1
        _deliver(tenant, ref.content_id, records, store, on_records, tally, now)
        outstanding.pop(ref.content_id, None)
    return True


class _NotRecords(Exception):
    """The blob is not a JSON array of records."""


def _records(payload: Any) -> list[Mapping[str, Any]]:
    if not isinstance(payload, list) or not all(isinstance(record, Mapping) for record in payload):
        raise _NotRecords("the blob is not a JSON array of records")
    return payload


def _deliver(
    tenant: str,
    content_id: str,
    records: list[Mapping[str, Any]],
    store: StateStore,
    on_records: RecordSink,
    tally: _Tally,
    now: datetime,
) -> None:
    ids = [record_id for record in records if (record_id := _record_id(record)) is not None]
    known = store.known_records(tenant, ids) if ids else set()
    new: list[Mapping[str, Any]] = []
    new_ids: list[str] = []
    in_blob: set[str] = set()  # a repeat inside this blob (earlier blobs are in the store already: memory stays flat)
    for record in records:
        record_id = _record_id(record)
        if record_id is None:
            tally.without_id += 1
        elif record_id in known or record_id in in_blob:
            tally.duplicate += 1
            continue
        else:
            in_blob.add(record_id)
            new_ids.append(record_id)
        new.append(record)
        if (moment := record_time(record)) is not None and (tally.newest is None or moment > tally.newest):
            tally.newest = moment
    if new:
        on_records(new)
    store.mark_processed(tenant, content_id, new_ids, now)
    tally.processed += len(new)
    tally.blobs += 1


def _record_id(record: Mapping[str, Any]) -> str | None:
    value = record.get("Id")
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def record_time(record: Mapping[str, Any]) -> datetime | None:
    """The record's `CreationTime` in UTC (a time without a zone is UTC, §2.7); None when missing or unreadable."""
    value = record.get("CreationTime")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _gap(tenant: str, store: StateStore, tally: _Tally, gap: Gap) -> None:
    if store.add_gap(tenant, gap):
        tally.gaps.append(gap)


def _ref_gap(ref: ContentRefLike, reason: Any, detail: str, now: datetime) -> Gap:
    created = utc(ref.created)
    return Gap(ref.content_type, reason, created, created, detail, now, ref.content_id)


def _blob_gap(content_type: str, reason: Any, failed: FailedBlob, detail: str, now: datetime) -> Gap:
    return Gap(content_type, reason, failed.created, failed.created, detail, now, failed.content_id)


def _give_up(
    tenant: str, store: StateStore, tally: _Tally, ref: ContentRefLike, failed: FailedBlob, now: datetime
) -> None:
    """After MAX_ATTEMPTS: a named gap, and the blob counts as processed (the checkpoint may pass it)."""
    detail = f"{failed.attempts} failed attempts, last: {failed.last_error}"
    _gap(tenant, store, tally, _ref_gap(ref, "unreadable", detail, now))
    store.mark_processed(tenant, ref.content_id, [], now)


def _prune(tenant: str, store: StateStore, now: datetime) -> None:
    last = _parse(store.value(tenant, PRUNED_AT_KEY))
    if last is not None and timedelta(0) <= now - last < PRUNE_EVERY:
        return
    store.prune(tenant, seen_before=now - SEEN_RETENTION, alerts_before=now - ALERT_RETENTION)
    store.put_value(tenant, PRUNED_AT_KEY, encode_time(now))


def _lag(tenant: str, store: StateStore, newest: datetime | None, now: datetime) -> float | None:
    stored = _parse(store.value(tenant, NEWEST_RECORD_KEY))
    if newest is not None and (stored is None or newest > stored):
        store.put_value(tenant, NEWEST_RECORD_KEY, encode_time(newest))
        stored = newest
    if stored is None:
        return None
    minutes = (now - stored).total_seconds() / 60
    return max(0.0, math.floor(minutes * 10) / 10)


def _parse(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return decode_time(text)
    except ValueError:
        return None


if TYPE_CHECKING:  # the type checker proves the real client fits the pass (no import at run time)
    from shared.activity.feed import ContentRef, FeedClient

    def _feed_client_is_a_source(client: FeedClient) -> FeedSource[ContentRef]:
        return client
