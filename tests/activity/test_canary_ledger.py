"""The audit-pipeline canary ledger on both real state backends (SQLite, Table Storage on Azurite): the control's read
writes it, the watch pass marks the canary seen, the verdict reads it back; the canary raises no alert."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from shared.activity.detections.base import Context
from shared.activity.ingest import RunBudget
from shared.activity.watch import WatchReport, watch_pass
from shared.controls import audit_pipeline
from shared.controls.audit_pipeline import LEDGER_KEEP, Canary, ledger, mark_seen
from tests.activity.feedstub import T0, StubFeed
from tests.support.audit_records import admin

TENANT = "0b5c1c1e-1111-2222-3333-444455556666"
OBJECT = "EURPR01A002.prod.outlook.com/Microsoft Exchange Hosted Organizations/contoso.onmicrosoft.com/canary"


def canary(minutes: int, nonce: str = "00aa11bb22cc33dd") -> Canary:
    return Canary(
        nonce,
        "canary@contoso.com",
        ("canary", "canary@contoso.com"),
        "CustomAttribute15",
        f"mailbox-audit-guard canary {nonce}",
        T0 - timedelta(minutes=minutes),
    )


def one_pass(feed: StubFeed, store) -> WatchReport:
    report = WatchReport(tenant_id=TENANT)
    watch_pass(
        report,
        feed,
        store,
        Context(own_app_ids=frozenset({"app-1"})),
        content_types=("Audit.Exchange",),
        budget=RunBudget(seconds=60, requests=1000),
        first_lookback=timedelta(hours=24),
        now=feed.now,
    )
    return report


def test_the_ledger_round_trips_and_a_second_sighting_changes_nothing(open_store):
    store = open_store()
    entry = canary(90)
    store.put_value(TENANT, entry.key, entry.as_json())
    store.put_value(TENANT, "canary:broken", "not json")  # an unreadable entry is skipped, never judged
    [read] = ledger(open_store(), TENANT)
    assert read == entry
    seen = mark_seen(store, TENANT, read, T0, "rec-1")
    assert mark_seen(store, TENANT, seen, T0 + timedelta(hours=1), "rec-2") == seen
    [again] = ledger(open_store(), TENANT)  # another process, the same state
    assert (again.seen, again.record_id, again.latency_minutes()) == (T0, "rec-1", 90.0)


def test_the_watch_pass_marks_the_canary_seen_and_raises_no_alert(store):
    entry = canary(30)
    other = canary(20, nonce="ffffffffffffffff")
    for item in (entry, other):
        store.put_value(TENANT, item.key, item.as_json())
    feed = StubFeed()
    as_text = f'-Identity "canary@contoso.com" -CustomAttribute15 "{entry.value}"'
    feed.add(
        "blob-1",
        T0 - timedelta(minutes=5),
        [
            admin(
                "Set-Mailbox",
                as_text,
                user="app-1",
                when=T0 - timedelta(minutes=29),
                record_id="rec-1",
                ObjectId=OBJECT,
                AppId="app-1",
            ),
            admin(
                "Set-Mailbox",
                {"CustomAttribute15": other.value},
                when=T0 - timedelta(minutes=19),
                record_id="rec-2",
                ObjectId=OBJECT.replace("/canary", "/ann"),
            ),
        ],
    )
    report = one_pass(feed, store)
    assert report.alerts == [] and report.canaries_seen == ["rec-1"]
    by_nonce = {item.nonce: item for item in ledger(store, TENANT)}
    assert by_nonce[entry.nonce].seen == T0 and by_nonce[entry.nonce].record_id == "rec-1"
    assert by_nonce[other.nonce].seen is None  # its value on another mailbox is not the canary
    assert store.checkpoint(TENANT, "Audit.Exchange") is not None  # what the verdict reads as "feed read until"


def test_the_read_keeps_the_ledger_bounded(store):
    entries = [canary(minutes) for minutes in range(LEDGER_KEEP + 5, 0, -1)]
    for index, item in enumerate(entries):
        entries[index] = replace(item, nonce=f"{index:016x}")
        store.put_value(TENANT, entries[index].key, entries[index].as_json())
    audit_pipeline._forget_old(store, TENANT, entries)
    kept = ledger(store, TENANT)
    assert len(kept) == LEDGER_KEEP and kept[0] == entries[5] and kept[-1] == entries[-1]
