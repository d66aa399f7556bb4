"""The ingest pass (shared.activity.ingest): nothing lost, nothing twice, driven by an in-process feed stand-in.

The feed (tests/activity/feedstub.py) serves windows and blobs from data and asserts the API's window rules; the
state is the real SQLite store (and, for restarts, Table Storage on Azurite too). What an administrator relies on:
every record reaches the detections exactly once, whatever restarts, duplicates, late blobs and failures happen,
and whatever cannot be read is named, never skipped silently.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest

from shared.activity.errors import FeedError
from shared.activity.ingest import OVERLAP, PassResult, RunBudget, run_pass
from shared.activity.sqlite_store import SqliteStateStore
from shared.activity.state import StateStore
from tests.activity.feedstub import T0, StubFeed, record

TENANT = "0b5c1c1e-1111-2222-3333-444455556666"
EXCHANGE, AAD = "Audit.Exchange", "Audit.AzureActiveDirectory"
H = timedelta(hours=1)
BIG = 10_000


class Sink:
    """The detections' side: every record handed over, in order."""

    def __init__(self) -> None:
        self.records: list[Mapping[str, Any]] = []
        self.calls = 0

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.calls += 1
        self.records.extend(records)

    @property
    def ids(self) -> list[str]:
        return [str(item.get("Id")) for item in self.records]


@pytest.fixture
def state(tmp_path) -> Any:
    store = SqliteStateStore(tmp_path / "watch.sqlite3")
    yield store
    store.close()


def run(
    feed: StubFeed,
    store: StateStore,
    sink: Callable[[Sequence[Mapping[str, Any]]], None],
    *,
    requests: int = BIG,
    content_types: Sequence[str] = (EXCHANGE,),
    **options: Any,
) -> PassResult:
    return run_pass(
        TENANT,
        feed,
        store,
        sink,
        content_types=content_types,
        budget=RunBudget(seconds=3600, requests=requests),
        now=feed.now,
        **options,
    )


def blob_of(feed: StubFeed, content_id: str, created, count: int, **options: Any) -> list[str]:
    ids = [f"{content_id}-r{index}" for index in range(count)]
    feed.add(content_id, created, [record(record_id, created - 2 * H) for record_id in ids], **options)
    return ids


# ---------------------------------------------------------------------------------------------------- the basics


def test_a_first_pass_reads_the_last_24_hours_once_and_checkpoints_at_now(state):
    feed, sink = StubFeed(), Sink()
    old = blob_of(feed, "too-old", T0 - 25 * H, 2)
    wanted = blob_of(feed, "b1", T0 - 23 * H, 3) + blob_of(feed, "b2", T0 - 1 * H, 2)

    result = run(feed, state, sink)

    assert sorted(sink.ids) == sorted(wanted) and not set(old) & set(sink.ids)
    assert feed.listings == [(EXCHANGE, T0 - 24 * H, T0)]
    assert (result.records_processed, result.records_duplicate, result.content_blobs) == (5, 0, 2)
    assert result.failed_blobs == () and result.gaps == () and result.errors == () and result.complete
    assert result.checkpoints == {EXCHANGE: T0} and state.checkpoint(TENANT, EXCHANGE) == T0
    assert result.subscriptions_started == (EXCHANGE,) and state.subscription_started(TENANT, EXCHANGE) == T0
    assert result.feed_lag_minutes == 180  # the newest record: created 3 h before now


def test_the_first_lookback_is_configurable_and_capped_at_the_feeds_seven_days(state, tmp_path):
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "two-days", T0 - 47 * H, 1)
    run(feed, state, sink, first_lookback=48 * H)
    assert [window[1] for window in feed.listings] == [T0 - 48 * H, T0 - 24 * H]
    assert len(sink.ids) == 1

    feed2 = StubFeed()
    other = SqliteStateStore(tmp_path / "other.sqlite3")
    run(feed2, other, Sink(), first_lookback=168 * H)
    other.close()
    assert feed2.listings[0][1] == T0 - timedelta(days=7) + timedelta(minutes=30)  # never the full 7 days


def test_the_next_pass_relists_the_overlap_and_skips_known_content(state):
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "b1", T0 - 2 * H, 2)
    run(feed, state, sink)
    feed.now = T0 + 10 * timedelta(minutes=1)
    feed.listings.clear()

    result = run(feed, state, sink)

    assert feed.listings == [(EXCHANGE, T0 - OVERLAP, feed.now)]
    assert OVERLAP == 12 * H
    assert feed.fetches == ["b1"]  # listed again, fetched once
    assert (result.content_skipped, result.content_blobs, result.records_processed) == (1, 0, 0)
    assert result.subscriptions_started == ()
    assert feed.starts[-1] == (EXCHANGE, T0)  # the pass hands the last start to the client


def test_records_without_an_id_are_handed_over_and_counted(state):
    feed, sink = StubFeed(), Sink()
    feed.add("b1", T0 - H, [record("r1", T0 - H), {"CreationTime": "2026-11-20T10:00:00", "Operation": "X"}])
    result = run(feed, state, sink)
    assert len(sink.records) == 2 and result.records_without_id == 1 and result.records_processed == 2


# ---------------------------------------------------------------------------------------------------- exactly once


@pytest.mark.parametrize("backend", ["sqlite", "table"])
def test_exactly_once_across_restarts_when_the_budget_interrupts_every_pass(backend, tmp_path, request):
    """60 blobs over three days; each pass may send 7 requests and the state is reopened for every pass."""
    if backend == "table":
        from shared.activity.table_store import TableStateStore
        from shared.config.loader import StorageSettings

        azurite = request.getfixturevalue("azurite_tables")
        storage = StorageSettings(connection_string=azurite.connection_string)
        table = f"ingest{random.randrange(16**12):012x}"

        def reopen() -> StateStore:
            return TableStateStore.open(storage, table, retry_total=0)
    else:

        def reopen() -> StateStore:
            return SqliteStateStore(tmp_path / "watch.sqlite3")

    feed, sink = StubFeed(), Sink()
    expected: list[str] = []
    for index in range(60):
        expected += blob_of(feed, f"b{index:02d}", T0 - 70 * H + index * H, 3)
    results = []
    for _ in range(30):
        store = reopen()
        results.append(run(feed, store, sink, requests=7, first_lookback=72 * H))
        store.close()
        feed.now += timedelta(minutes=10)
        if results[-1].complete:
            break

    assert results[0].budget_exhausted and results[0].records_processed > 0
    assert results[-1].complete, results[-1]
    assert Counter(sink.ids) == Counter(expected)  # every record once
    assert sorted(Counter(feed.fetches).values()) == [1] * 60  # every blob fetched once


def test_a_pass_stopped_by_its_time_budget_keeps_what_it_did(state):
    feed, sink = StubFeed(), Sink()
    for index in range(5):
        blob_of(feed, f"b{index}", T0 - 5 * H + index * H, 1)
    ticks = iter(range(100))
    budget = RunBudget(seconds=4, requests=BIG, clock=lambda: float(next(ticks)))  # 1 s per request

    result = run_pass(TENANT, feed, state, sink, content_types=[EXCHANGE], budget=budget, now=feed.now)

    assert result.budget_exhausted and not result.complete
    assert len(sink.ids) == 1  # subscription, listing, one blob; then the time was up
    assert state.known_content(TENANT, ["b0"]) == {"b0"}
    assert state.checkpoint(TENANT, EXCHANGE) == T0 - 24 * H  # where the first pass began: nothing passed
    assert run(feed, state, sink).records_processed == 4 and len(sink.ids) == 5


def test_duplicates_days_later_are_not_handed_over_again(state):
    feed, sink = StubFeed(), Sink()
    feed.add("b1", T0 - H, [record("r1", T0 - 2 * H), record("r2", T0 - 2 * H), record("r3", T0 - 2 * H)])
    run(feed, state, sink)
    feed.now = T0 + timedelta(days=3)
    feed.add("b2", feed.now - H, [record("R2", T0 - 2 * H), record("r4", feed.now - 2 * H), record("r4", feed.now)])

    result = run(feed, state, sink)

    assert sink.ids == ["r1", "r2", "r3", "r4"]  # R2: the same Id in another case (GUIDs are case-blind)
    assert (result.records_processed, result.records_duplicate) == (1, 2)


def test_late_blobs_inside_the_overlap_are_read(state):
    feed, sink = StubFeed(), Sink()
    run(feed, state, sink)  # checkpoint at T0
    late = blob_of(feed, "late", T0 - 11 * H, 2, listed_from=T0 + 5 * timedelta(minutes=1))
    too_late = blob_of(feed, "too-late", T0 - 13 * H, 1, listed_from=T0 + 5 * timedelta(minutes=1))
    feed.now = T0 + 10 * timedelta(minutes=1)

    run(feed, state, sink)

    assert sink.ids == late  # created 11 h before the checkpoint, listed only after it passed: still read
    assert not set(too_late) & set(sink.ids)  # beyond the 12-hour overlap: the known limit


# ---------------------------------------------------------------------------------------------------- failures


def test_a_blob_that_fails_twice_then_works_is_reported_retried_and_read_once(state):
    feed, sink = StubFeed(), Sink()
    flaky = blob_of(feed, "flaky", T0 - 10 * H, 2, fail_times=2)
    healthy = blob_of(feed, "healthy", T0 - 5 * H, 1)

    first = run(feed, state, sink)
    assert sink.ids == healthy  # the rest of the window is not held up
    assert [(f.content_id, f.attempts, f.last_error) for f in first.failed_blobs] == [
        ("flaky", 1, str(FeedError("blob: HTTP 500 AF50000 (retries exhausted)")))
    ]
    assert not first.complete and first.gaps == ()
    assert state.checkpoint(TENANT, EXCHANGE) == T0 - 10 * H  # held at the failed blob's contentCreated

    feed.now += 10 * timedelta(minutes=1)
    second = run(feed, state, sink)
    assert [f.attempts for f in second.failed_blobs] == [2]
    assert state.checkpoint(TENANT, EXCHANGE) == T0 - 10 * H

    feed.now += 10 * timedelta(minutes=1)
    third = run(feed, state, sink)
    assert sink.ids == healthy + flaky
    assert third.failed_blobs == () and third.complete and state.checkpoint(TENANT, EXCHANGE) == feed.now
    assert feed.fetches.count("flaky") == 3 and feed.fetches.count("healthy") == 1


def test_a_blob_that_never_works_is_reported_every_pass_then_named_as_a_gap(state):
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "broken", T0 - 10 * H, 2, fail_times=-1)
    results = []
    for index in range(6):
        blob_of(feed, f"healthy{index}", feed.now - H, 1)  # the feed itself works: other blobs are read
        results.append(run(feed, state, sink))
        feed.now += 10 * timedelta(minutes=1)

    assert [[f.attempts for f in r.failed_blobs] for r in results[:4]] == [[1], [2], [3], [4]]
    assert all(r.gaps == () for r in results[:4])
    fifth = results[4]
    assert fifth.failed_blobs == () and len(fifth.gaps) == 1
    gap = fifth.gaps[0]
    assert (gap.reason, gap.content_id, gap.content_type, gap.start) == ("unreadable", "broken", EXCHANGE, T0 - 10 * H)
    assert "5 failed attempts" in gap.detail and "AF50000" in gap.detail
    assert "could not be read" in gap.message
    assert fifth.checkpoints[EXCHANGE] == fifth.now  # given up: the checkpoint may pass it now
    assert state.gaps(TENANT, T0) == [gap] and results[5].gaps == ()  # named once, kept in the state
    assert feed.fetches.count("broken") == 5
    assert len(sink.ids) == 6


def test_a_feed_that_fails_every_blob_turns_nothing_into_a_gap(state):
    """An outage or a lost permission: every fetch fails; the blobs wait (reported), they are not given up."""
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "a", T0 - 10 * H, 1, fail_times=-1)
    blob_of(feed, "b", T0 - 9 * H, 1, fail_times=-1)
    for _ in range(8):
        result = run(feed, state, sink)
        feed.now += 10 * timedelta(minutes=1)
    assert [(f.content_id, f.attempts) for f in result.failed_blobs] == [("a", 8), ("b", 8)]
    assert state.gaps(TENANT, T0 - timedelta(days=30)) == []
    assert state.checkpoint(TENANT, EXCHANGE) == T0 - 10 * H

    for blob in feed.blobs.values():  # the feed recovers
        blob.fail_times = 0
    assert run(feed, state, sink).complete and len(sink.ids) == 2


def test_a_blob_that_is_not_a_json_array_of_records_is_a_failure(state):
    feed, sink = StubFeed(), Sink()
    feed.add("odd", T0 - H, [], payload={"error": "not a list"})
    result = run(feed, state, sink)
    assert [(f.content_id, f.last_error) for f in result.failed_blobs] == [
        ("odd", "the blob is not a JSON array of records")
    ]


def test_expired_content_is_a_named_gap_at_once(state):
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "gone", T0 - 3 * H, 2, expired=True)
    blob_of(feed, "fine", T0 - 2 * H, 1)

    result = run(feed, state, sink)

    assert [(g.reason, g.content_id) for g in result.gaps] == [("expired-before-read", "gone")]
    assert "AF20051" in result.gaps[0].detail and "content expired before it was read" in result.gaps[0].message
    assert result.failed_blobs == () and state.checkpoint(TENANT, EXCHANGE) == T0 and len(sink.ids) == 1
    feed.now += 10 * timedelta(minutes=1)
    assert run(feed, state, sink).gaps == () and feed.fetches.count("gone") == 1


def test_after_an_outage_of_more_than_seven_days_the_lost_days_are_a_named_gap(state):
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "before", T0 - H, 1)
    blob_of(feed, "stuck", T0 - 2 * H, 1, fail_times=-1)
    run(feed, state, sink)
    feed.now = T0 + timedelta(days=9)
    earliest = feed.now - timedelta(days=7) + timedelta(minutes=30)
    recent = blob_of(feed, "recent", feed.now - timedelta(days=6), 2) + blob_of(feed, "today", feed.now - H, 1)
    feed.listings.clear()

    result = run(feed, state, sink)

    outage = [g for g in result.gaps if g.reason == "outage-beyond-retention"]
    assert [(g.start, g.end) for g in outage] == [(T0 - 2 * H, earliest)]  # from the held checkpoint
    assert "did not run for more than 7 days" in outage[0].message
    stuck = [g for g in result.gaps if g.content_id == "stuck"]
    assert [g.reason for g in stuck] == ["expired-before-read"] and "failed 1 time(s)" in stuck[0].detail
    assert feed.listings[0][1] == earliest and all(end - start <= 24 * H for _, start, end in feed.listings)
    assert sink.ids[-3:] == recent and result.failed_blobs == ()
    assert state.checkpoint(TENANT, EXCHANGE) == feed.now


def test_the_checkpoint_never_passes_an_unprocessed_blob(state):
    """A failure in an early window holds the checkpoint even when later windows succeed; one in the overlap (a
    late blob behind the checkpoint) pulls it back to the blob."""
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "fails", T0 - 30 * H, 1, fail_times=1)
    blob_of(feed, "later", T0 - 2 * H, 1)
    run(feed, state, sink, first_lookback=48 * H)
    assert state.checkpoint(TENANT, EXCHANGE) == T0 - 30 * H
    feed.now += 10 * timedelta(minutes=1)
    run(feed, state, sink)
    assert state.checkpoint(TENANT, EXCHANGE) == feed.now

    blob_of(feed, "late-and-failing", feed.now - 6 * H, 1, fail_times=1, listed_from=feed.now)
    feed.now += 10 * timedelta(minutes=1)
    run(feed, state, sink)
    assert state.checkpoint(TENANT, EXCHANGE) == feed.now - 10 * timedelta(minutes=1) - 6 * H
    feed.now += 10 * timedelta(minutes=1)
    run(feed, state, sink)
    assert state.checkpoint(TENANT, EXCHANGE) == feed.now
    assert sorted(sink.ids) == ["fails-r0", "late-and-failing-r0", "later-r0"]


def test_random_failures_late_listings_and_budgets_lose_nothing_and_repeat_nothing(state):
    rng = random.Random(11)
    feed, sink = StubFeed(), Sink()
    expected: list[str] = []
    for index in range(120):
        created = T0 - 20 * H + index * 15 * timedelta(minutes=1)
        lateness = timedelta(minutes=rng.choice([0, 0, 0, 30, 90, 360, 660]))
        fails = rng.choice([0, 0, 0, 0, 1, 2, 3])
        ids = [f"b{index}-r{n}" for n in range(rng.randint(0, 4))]
        # Some records repeat in a later blob (the feed's duplicates by design).
        records = [record(i, created) for i in ids] + (
            [record(expected[-1], created)] if expected and index % 7 == 0 else []
        )
        feed.add(f"b{index}", created, records, listed_from=created + lateness, fail_times=fails)
        expected += ids
    feed.now = T0 - 20 * H
    for _ in range(400):
        result = run(feed, state, sink, requests=rng.randint(3, 12), first_lookback=H)
        if not (result.budget_exhausted or result.failed_blobs):
            # The invariant: every blob the feed lists, created before the checkpoint, was processed.
            checkpoint = state.checkpoint(TENANT, EXCHANGE)
            visible = [b.ref.content_id for b in feed.blobs.values() if b.listed_from <= feed.now]
            behind = [cid for cid in visible if feed.blobs[cid].ref.created < checkpoint]
            assert state.known_content(TENANT, behind) == set(behind)
        feed.now += 10 * timedelta(minutes=1)
    assert result.complete
    assert Counter(sink.ids) == Counter(expected)


def test_a_budget_too_small_for_every_content_type_does_not_starve_the_later_one(state):
    feed, sink = StubFeed(), Sink()
    for index in range(6):
        blob_of(feed, f"ex{index}", T0 - (index + 1) * H, 1)
        blob_of(feed, f"aad{index}", T0 - (index + 1) * H, 1, content_type=AAD)
    first = run(feed, state, sink, content_types=(EXCHANGE, AAD), requests=4)
    assert first.budget_exhausted
    assert state.checkpoint(TENANT, AAD) is None  # the first pass spent its budget on Audit.Exchange
    feed.listings.clear()
    run(feed, state, sink, content_types=(EXCHANGE, AAD), requests=4)
    assert feed.listings and feed.listings[0][0] == AAD  # never read: it goes first now
    for _ in range(10):
        if run(feed, state, sink, content_types=(EXCHANGE, AAD)).complete:
            break
    assert sorted(sink.ids) == sorted([f"ex{i}-r0" for i in range(6)] + [f"aad{i}-r0" for i in range(6)])


# ---------------------------------------------------------------------------------------------------- errors


def test_a_listing_error_is_reported_keeps_the_checkpoint_and_other_content_types_go_on(state):
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "ex", T0 - H, 1)
    blob_of(feed, "aad", T0 - H, 1, content_type=AAD)
    run(feed, state, sink, content_types=(EXCHANGE, AAD))
    blob_of(feed, "ex2", T0 + 5 * timedelta(minutes=1), 1)
    feed.now += 10 * timedelta(minutes=1)
    feed.list_fails = 1

    result = run(feed, state, sink, content_types=(EXCHANGE, AAD))

    assert len(result.errors) == 1 and "Audit.Exchange: listing" in result.errors[0] and "AF50000" in result.errors[0]
    assert result.checkpoints == {EXCHANGE: T0, AAD: feed.now}
    assert not result.complete
    feed.now += 10 * timedelta(minutes=1)
    assert run(feed, state, sink, content_types=(EXCHANGE, AAD)).complete
    assert sorted(sink.ids) == ["aad-r0", "ex-r0", "ex2-r0"]


def test_a_subscription_error_is_reported_and_the_content_type_waits(state):
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "ex", T0 - H, 1)
    feed.subscription_fails = 1
    result = run(feed, state, sink)
    assert result.errors == (
        "Audit.Exchange: the subscription could not be ensured: "
        + str(FeedError("subscriptions/start: HTTP 503 (retries exhausted)")),
    )
    assert sink.ids == [] and state.checkpoint(TENANT, EXCHANGE) is None
    assert run(feed, state, sink).complete and sink.ids == ["ex-r0"]


def test_a_failure_in_the_detections_stops_the_pass_and_the_blob_is_read_again(state):
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "b1", T0 - H, 2)

    def broken(records: Sequence[Mapping[str, Any]]) -> None:
        raise RuntimeError("detections bug")

    with pytest.raises(RuntimeError, match="detections bug"):
        run(feed, state, broken)
    assert state.known_content(TENANT, ["b1"]) == set() and state.known_records(TENANT, ["b1-r0"]) == set()
    assert run(feed, state, sink).complete and sink.ids == ["b1-r0", "b1-r1"]


def test_old_seen_ids_are_pruned_after_eight_days(state):
    feed, sink = StubFeed(), Sink()
    blob_of(feed, "b1", T0 - H, 1)
    run(feed, state, sink)
    feed.now = T0 + timedelta(days=8, hours=1)
    run(feed, state, sink)
    assert state.known_records(TENANT, ["b1-r0"]) == set() and state.known_content(TENANT, ["b1"]) == set()
