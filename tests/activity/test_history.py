"""What the watch keeps for the evidence report (shared.activity.history), on both state backends: the alerts it
raised, its last pass, and the summary the report's activity section is built from."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shared.activity import history
from shared.activity.detections.base import Alert
from shared.activity.state import VALUE_MAX_BYTES, Gap

T1, T2 = "0b5c1c1e-1111-2222-3333-444455556666", "9f9f9f9f-1111-2222-3333-444455556666"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TYPES = ("Audit.Exchange", "Audit.AzureActiveDirectory")


def alert(
    name: str, *, detection: str = "audit-tampering", severity: str = "high", records: int = 1, hours_ago: float = 1
) -> Alert:
    return Alert(
        id=f"{detection}:{name}",
        detection=detection,
        severity=severity,  # type: ignore[arg-type]
        time=NOW - timedelta(hours=hours_ago),
        actor="mallory@contoso.com",
        mailbox="ann@contoso.com",
        operation="Set-Mailbox",
        client_ip="81.2.69.142",
        country="GB",
        record_ids=tuple(f"rec-{index:05d}" for index in range(records)),
        message=f"{name} fired",
    )


def clear_pass(store, at: datetime, **outcome) -> None:
    history.record_pass(store, T1, {"status": "Clear", "feed_lag_minutes": 12.0, **outcome}, at)


def test_alerts_raised_in_the_last_seven_days_are_reported_newest_event_first(store):
    history.record_alerts(store, T1, [alert("old", severity="medium")], NOW - timedelta(days=8))
    history.record_alerts(store, T1, [alert("week", hours_ago=3)], NOW - timedelta(days=6, hours=23))
    # Raised today about an older event (a backfill): shown by its event time.
    history.record_alerts(store, T1, [alert("backfill", hours_ago=400)], NOW - timedelta(hours=1))
    history.record_alerts(store, T1, [alert("today", detection="send-as", severity="medium")], NOW - timedelta(hours=2))
    history.record_alerts(store, T2, [alert("other-tenant")], NOW)
    clear_pass(store, NOW - timedelta(minutes=5))

    section = history.summary(store, T1, TYPES, NOW, source="test")
    assert [entry["id"] for entry in section["alerts"]] == [
        "send-as:today",
        "audit-tampering:week",
        "audit-tampering:backfill",
    ]
    assert section["alerts_total"] == 3
    assert section["alerts_by_detection"] == {"audit-tampering": 2, "send-as": 1}
    assert section["alerts_by_severity"] == {"high": 2, "medium": 1}
    first = section["alerts"][0]
    assert (first["actor"], first["mailbox"], first["country"], first["record_ids"]) == (
        "mallory@contoso.com",
        "ann@contoso.com",
        "GB",
        ["rec-00000"],
    )
    assert (section["health"], section["health_reasons"]) == ("OK", [])


def test_an_alert_on_many_records_keeps_a_count_and_the_first_ids(store):
    history.record_alerts(store, T1, [alert("mass", detection="mass-delete", records=5000)], NOW)
    [kept] = history.summary(store, T1, TYPES, NOW, source="test")["alerts"]
    assert kept["record_count"] == 5000
    assert kept["record_ids"] == [f"rec-{index:05d}" for index in range(history.MAX_RECORD_IDS)]


def test_an_alert_with_a_huge_message_is_kept_shortened(store):
    huge = Alert(**{**alert("x").__dict__, "message": "é" * VALUE_MAX_BYTES})
    history.record_alerts(store, T1, [huge], NOW)
    [kept] = history.summary(store, T1, TYPES, NOW, source="test")["alerts"]
    assert kept["message"].endswith(" …") and len(kept["message"]) < 2100


def test_the_last_pass_and_the_last_pass_without_error_are_kept_apart(store):
    clear_pass(store, NOW - timedelta(minutes=30), records_processed=40)
    history.record_pass(store, T1, {"status": "Error", "error": "the feed answered 503"}, NOW - timedelta(minutes=5))
    section = history.summary(store, T1, TYPES, NOW, source="test")
    assert section["last_pass"]["status"] == "Error"
    assert section["last_ok_pass_at"] == history.encode_time(NOW - timedelta(minutes=30))
    assert section["health"] == "Attention"
    assert section["health_reasons"] == ["the last watch pass failed: the feed answered 503"]


def test_a_stale_lagging_or_lossy_feed_needs_attention_and_says_why(store):
    clear_pass(store, NOW - timedelta(hours=3), feed_lag_minutes=500.0)
    store.record_failure(T1, TYPES[0], "blob-1", NOW - timedelta(hours=4), "HTTP 500", NOW - timedelta(hours=3))
    gap = Gap(TYPES[0], "expired-before-read", NOW - timedelta(days=8), NOW - timedelta(days=7), "", NOW)
    store.add_gap(T1, gap)
    section = history.summary(store, T1, TYPES, NOW, source="test")
    assert section["health"] == "Attention"
    reasons = "\n".join(section["health_reasons"])
    assert "3.0 hours ago" in reasons
    assert "500 minutes" in reasons
    assert "1 content blob(s) could not be read yet" in reasons
    assert "1 gap(s)" in reasons
    assert [blob["content_id"] for blob in section["failed_blobs"]] == ["blob-1"]
    assert [entry["reason"] for entry in section["gaps"]] == ["expired-before-read"]


def test_a_state_without_any_pass_is_unknown_not_ok(store):
    section = history.summary(store, T1, TYPES, NOW, source="test")
    assert section["health"] == "Unknown"
    assert section["alerts"] == [] and section["last_pass"] is None


def test_checkpoints_are_shown_per_content_type(store):
    store.set_checkpoint(T1, TYPES[0], NOW - timedelta(minutes=20))
    feeds = history.summary(store, T1, TYPES, NOW, source="test")["feeds"]
    assert feeds == [
        {
            "content_type": TYPES[0],
            "listed_until": history.encode_time(NOW - timedelta(minutes=20)),
            "subscription_started": None,
        },
        {"content_type": TYPES[1], "listed_until": None, "subscription_started": None},
    ]


def test_alert_details_older_than_the_retention_are_pruned_once_a_day(store):
    history.record_alerts(store, T1, [alert("ancient")], NOW - timedelta(days=history.ALERT_DETAIL_DAYS + 1))
    history.record_alerts(store, T1, [alert("recent")], NOW - timedelta(days=10))
    clear_pass(store, NOW)
    kept = store.values(T1, history.ALERT_PREFIX)
    assert [json.loads(text)["id"] for text in kept.values()] == ["audit-tampering:recent"]
