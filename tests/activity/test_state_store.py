"""The watch state's interface, one suite for both backends (SQLite on disk, Table Storage on Azurite).

Every test here runs once per backend (the `store` fixture, tests/activity/stores.py): what the ingest pass, the
detections and the canary rely on holds in the CLI's state and in the Function App's alike.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from shared.activity.state import BASELINE_MAX_BYTES, BaselineTooLarge, Gap, StateError

T1 = "0b5c1c1e-1111-2222-3333-444455556666"
T2 = "9f9f9f9f-1111-2222-3333-444455556666"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
EXCHANGE, AAD = "Audit.Exchange", "Audit.AzureActiveDirectory"
# A real contentId's shape (handbook §1.2).
CONTENT = "20200702020621634014687$20200702020621634014687$audit_exchange$Audit_Exchange$emea0036"
ODD_KEYS = [
    "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)",
    "a/b#c?d",
    "user@contoso.com",
    "USER@contoso.com",
    "%41",
    "A",
    "Zoë Ångström|x",
    "tab\there",
]


def hours(n: float) -> datetime:
    return NOW + timedelta(hours=n)


def test_a_new_state_knows_nothing(store):
    assert store.checkpoint(T1, EXCHANGE) is None
    assert store.subscription_started(T1, EXCHANGE) is None
    assert store.known_content(T1, [CONTENT]) == set()
    assert store.known_records(T1, ["r1"]) == set()
    assert store.failures(T1) == [] and store.gaps(T1, NOW - timedelta(days=365)) == []
    assert store.baseline(T1, "user@contoso.com") is None
    assert store.value(T1, "k") is None and store.values(T1) == {}


def test_checkpoints_and_subscription_starts_are_per_tenant_and_content_type_and_can_move_back(store):
    store.set_checkpoint(T1, EXCHANGE, hours(-1))
    store.set_subscription_started(T1, EXCHANGE, hours(-30))
    store.set_checkpoint(T1, AAD, hours(-2))
    assert store.checkpoint(T1, EXCHANGE) == hours(-1)
    assert store.subscription_started(T1, EXCHANGE) == hours(-30)
    assert store.checkpoint(T1, AAD) == hours(-2) and store.subscription_started(T1, AAD) is None
    assert store.checkpoint(T2, EXCHANGE) is None
    store.set_checkpoint(T1, EXCHANGE, hours(-5))  # a failed blob holds it back: allowed
    assert store.checkpoint(T1, EXCHANGE) == hours(-5)
    assert store.subscription_started(T1, EXCHANGE) == hours(-30)  # untouched by the checkpoint


def test_times_come_back_in_utc_to_the_microsecond_and_naive_times_are_refused(store):
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    store.set_checkpoint(T1, EXCHANGE, moment.astimezone(datetime.now().astimezone().tzinfo))
    assert store.checkpoint(T1, EXCHANGE) == moment
    assert store.checkpoint(T1, EXCHANGE).tzinfo is not None
    with pytest.raises(ValueError, match="timezone-aware"):
        store.set_checkpoint(T1, EXCHANGE, datetime(2026, 1, 2))


def test_processed_content_and_seen_records_are_remembered_per_tenant(store):
    store.mark_processed(T1, CONTENT, ["r1", "r2"], NOW)
    assert store.known_content(T1, [CONTENT, "other"]) == {CONTENT}
    assert store.known_records(T1, ["r1", "r2", "r3"]) == {"r1", "r2"}
    assert store.known_content(T2, [CONTENT]) == set() and store.known_records(T2, ["r1"]) == set()
    store.mark_processed(T1, "empty-blob", [], NOW)
    assert store.known_content(T1, ["empty-blob"]) == {"empty-blob"}


def test_lookups_and_marks_of_many_ids_at_once(store):
    ids = [f"{index:08d}-aaaa-bbbb-cccc-{index:012d}" for index in range(1_250)]
    store.mark_processed(T1, CONTENT, ids[:1_000], NOW)
    assert store.known_records(T1, ids) == set(ids[:1_000])
    assert store.known_records(T1, ids[:3] + ids[:3]) == set(ids[:3])  # repeated ids are fine


def test_a_failed_blob_counts_its_attempts_and_keeps_its_last_error(store):
    first = store.record_failure(T1, EXCHANGE, CONTENT, hours(-3), "HTTP 500 AF50000", hours(0))
    assert (first.attempts, first.last_error, first.first_failed, first.last_failed) == (
        1,
        "HTTP 500 AF50000",
        hours(0),
        hours(0),
    )
    second = store.record_failure(T1, EXCHANGE, CONTENT, hours(-3), "the blob is\nnot JSON", hours(1))
    assert (second.attempts, second.last_error, second.first_failed, second.last_failed) == (
        2,
        "the blob is not JSON",
        hours(0),
        hours(1),
    )
    store.record_failure(T1, AAD, "older", hours(-9), "x", hours(1))
    assert [(f.content_id, f.content_type, f.attempts, f.created) for f in store.failures(T1)] == [
        ("older", AAD, 1, hours(-9)),
        (CONTENT, EXCHANGE, 2, hours(-3)),
    ]
    assert store.failures(T2) == []
    store.clear_failure(T1, "older")
    store.clear_failure(T1, "never-failed")  # nothing to clear: fine
    assert [f.content_id for f in store.failures(T1)] == [CONTENT]


def test_processing_a_failed_blob_clears_its_failure(store):
    store.record_failure(T1, EXCHANGE, CONTENT, hours(-3), "boom", NOW)
    store.mark_processed(T1, CONTENT, ["r1"], NOW)
    assert store.failures(T1) == []


def test_gaps_are_recorded_once_and_listed_since_a_time(store):
    window = Gap(EXCHANGE, "outage-beyond-retention", hours(-300), hours(-160), "", hours(-1))
    blob = Gap(EXCHANGE, "expired-before-read", hours(-170), hours(-170), "AF20051", hours(0), CONTENT)
    assert store.add_gap(T1, window) is True
    assert store.add_gap(T1, blob) is True
    assert store.add_gap(T1, blob) is False  # the same blob again: not a new gap
    assert store.gaps(T1, hours(-2)) == [window, blob]
    assert store.gaps(T1, hours(-0.5)) == [blob]
    assert store.gaps(T2, hours(-2)) == []
    assert "content expired before it was read" in blob.message and CONTENT in blob.message


def test_baselines_are_small_json_documents_per_user_key(store):
    document = {
        "countries": {"NL": {"first": "2026-11-01T00:00:00Z", "last": "2026-11-28T00:00:00Z"}},
        "pairs": [["alice@contoso.com", "bob@contoso.com"]],
        "deletes_per_hour": {"2026-11-28T11": 3},
    }
    for index, key in enumerate(ODD_KEYS):
        store.put_baseline(T1, key, {**document, "n": index})
    for index, key in enumerate(ODD_KEYS):
        assert store.baseline(T1, key) == {**document, "n": index}, key
    store.put_baseline(T1, "user@contoso.com", {"replaced": True})
    assert store.baseline(T1, "user@contoso.com") == {"replaced": True}
    assert store.baseline(T2, "user@contoso.com") is None


def test_a_baseline_that_is_too_large_or_not_json_is_refused_and_nothing_is_written(store):
    with pytest.raises(StateError, match=str(BASELINE_MAX_BYTES)):
        store.put_baseline(T1, "u", {"x": "é" * BASELINE_MAX_BYTES})
    with pytest.raises(StateError, match="plain JSON"):
        store.put_baseline(T1, "u", {"when": NOW})
    with pytest.raises(StateError, match="non-empty"):
        store.put_baseline(T1, "", {})
    assert store.baseline(T1, "u") is None


def test_many_baselines_are_written_at_once_also_beyond_one_table_transaction(store):
    # 150 documents of ~20 KB: more than one entity group transaction holds (100 entities, 4 MiB payload).
    documents = {f"user:{index:03d}@contoso.com": {"n": index, "pad": "x" * 20_000} for index in range(150)}
    documents.update({key: {"odd": key} for key in ODD_KEYS})
    store.put_baselines(T1, documents)
    for key, document in documents.items():
        assert store.baseline(T1, key) == document, key
    store.put_baselines(T1, {})  # nothing to write is no error
    assert store.baseline(T2, "user:000@contoso.com") is None


def test_a_batch_with_one_baseline_too_large_names_it_and_writes_nothing(store):
    documents = {"fine": {"a": 1}, "huge": {"x": "é" * BASELINE_MAX_BYTES}, "later": {"b": 2}}
    with pytest.raises(BaselineTooLarge) as refused:
        store.put_baselines(T1, documents)
    assert refused.value.key == "huge"
    assert [store.baseline(T1, key) for key in documents] == [None, None, None]


def test_an_alert_id_is_claimed_once(store):
    assert store.claim_alerts(T1, ["a1", "a2"], NOW) == {"a1", "a2"}
    assert store.claim_alerts(T1, ["a2", "a3", "a3"], NOW) == {"a3"}
    assert store.claim_alerts(T1, ["a1"], NOW) == set()
    assert store.claim_alerts(T2, ["a1"], NOW) == {"a1"}  # another tenant's alert


def test_two_writers_at_once_claim_each_alert_exactly_once(open_store):
    """Two instances on one state (two processes, or two Function App instances) racing for the same alerts."""
    stores, ids = [open_store(), open_store()], [f"mass-delete:{index}" for index in range(40)]
    claims: list[set[str]] = [set(), set()]
    barrier, errors = threading.Barrier(2), []

    def claim(which: int) -> None:
        barrier.wait()
        try:
            for alert_id in ids:
                claims[which] |= stores[which].claim_alerts(T1, [alert_id], NOW)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(which,)) for which in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert claims[0] | claims[1] == set(ids)
    assert claims[0] & claims[1] == set()


def test_two_writers_at_once_count_every_failed_attempt(open_store):
    stores, barrier, errors = [open_store(), open_store()], threading.Barrier(2), []

    def fail(which: int) -> None:
        barrier.wait()
        try:
            for _ in range(5):
                stores[which].record_failure(T1, EXCHANGE, CONTENT, hours(-1), f"from {which}", NOW)
        except Exception as exc:  # surfaced below: a thread's exception would otherwise only be a warning
            errors.append(exc)

    threads = [threading.Thread(target=fail, args=(which,)) for which in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert [failed.attempts for failed in stores[0].failures(T1)] == [10]


def test_the_key_value_area(store):
    store.put_value(T1, "canary/2026-11-28T12:00", '{"sent": true}')
    store.put_value(T1, "canary/2026-11-28T13:00", "{}")
    store.put_value(T1, "canary%_x", "percent")
    store.put_value(T1, "other", "o")
    for key in ODD_KEYS:
        store.put_value(T1, key, key)
    assert store.value(T1, "canary/2026-11-28T12:00") == '{"sent": true}'
    assert store.values(T1, "canary/") == {"canary/2026-11-28T12:00": '{"sent": true}', "canary/2026-11-28T13:00": "{}"}
    assert store.values(T1, "canary%") == {"canary%_x": "percent"}
    assert store.values(T1, "%") == {"%41": "%41"}
    assert set(store.values(T1)) == {
        "canary/2026-11-28T12:00",
        "canary/2026-11-28T13:00",
        "canary%_x",
        "other",
        *ODD_KEYS,
    }
    for key in ODD_KEYS:
        assert store.value(T1, key) == key
    store.put_value(T1, "other", "replaced")
    store.delete_value(T1, "canary/2026-11-28T13:00")
    store.delete_value(T1, "never-there")
    assert store.value(T1, "other") == "replaced" and store.value(T1, "canary/2026-11-28T13:00") is None
    assert store.values(T2) == {}
    with pytest.raises(StateError, match="string"):
        store.put_value(T1, "k", 3)  # type: ignore[arg-type]


def test_prune_forgets_old_ids_and_keeps_the_rest(store):
    store.mark_processed(T1, "old-blob", ["old-1", "old-2"], NOW - timedelta(days=9))
    store.mark_processed(T1, "new-blob", ["new-1"], NOW - timedelta(days=7))
    store.mark_processed(T2, "t2-old-blob", ["t2-old"], NOW - timedelta(days=9))
    store.claim_alerts(T1, ["old-alert"], NOW - timedelta(days=91))
    store.claim_alerts(T1, ["new-alert"], NOW - timedelta(days=9))

    removed = store.prune(T1, seen_before=NOW - timedelta(days=8), alerts_before=NOW - timedelta(days=90))

    assert removed == 4  # two records, one blob, one alert
    assert store.known_records(T1, ["old-1", "old-2", "new-1"]) == {"new-1"}
    assert store.known_content(T1, ["old-blob", "new-blob"]) == {"new-blob"}
    assert store.claim_alerts(T1, ["old-alert", "new-alert"], NOW) == {"old-alert"}
    assert store.known_records(T2, ["t2-old"]) == {"t2-old"}  # another tenant's state is its own


def test_marking_a_record_again_renews_it(store):
    store.mark_processed(T1, "b1", ["r1"], NOW - timedelta(days=9))
    store.mark_processed(T1, "b2", ["r1"], NOW - timedelta(days=1))
    store.prune(T1, seen_before=NOW - timedelta(days=8), alerts_before=NOW - timedelta(days=90))
    assert store.known_records(T1, ["r1"]) == {"r1"}


def test_the_state_outlives_the_process(open_store):
    first = open_store()
    first.set_checkpoint(T1, EXCHANGE, NOW)
    first.mark_processed(T1, CONTENT, ["r1"], NOW)
    first.put_baseline(T1, "u", {"a": 1})
    first.close()
    second = open_store()
    assert second.checkpoint(T1, EXCHANGE) == NOW
    assert second.known_records(T1, ["r1"]) == {"r1"} and second.known_content(T1, [CONTENT]) == {CONTENT}
    assert second.baseline(T1, "u") == {"a": 1}
