"""audit-pipeline: the verdict, the canary's value and how a record is recognised, as pure functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.activity.detections.audit_tampering import evaluate as tampering
from shared.activity.detections.base import Context
from shared.activity.records import parse_record
from shared.config.settings import AuditPolicy, CanarySettings
from shared.controls.audit_pipeline import (
    CONTROL,
    Canary,
    PipelineSnapshot,
    audit_property_value,
    evaluate_audit_pipeline,
    matches,
    pipeline_measurements,
)
from shared.controls.mailbox_scan import timespan_days
from shared.controls.registry import NOT_REMEDIABLE, OPT_IN_CONTROLS, UNATTENDED_CONTROLS
from shared.model import Status

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
NAMES = ("canary", "canary@contoso.com")


def canary(written: datetime = T0, *, seen: datetime | None = None, failed: str | None = None) -> Canary:
    return Canary(
        "ab12cd34ef56ab78",
        "canary@contoso.com",
        NAMES,
        "CustomAttribute15",
        "mailbox-audit-guard canary ab12cd34ef56ab78",
        written,
        seen=seen,
        record_id="r1" if seen else None,
        failed=failed,
    )


def snapshot(*canaries: Canary, now: datetime, read_until: datetime | None = None, **extra) -> PipelineSnapshot:
    return PipelineSnapshot(
        now=now,
        max_delay_hours=24,
        canaries=canaries,
        written=canaries[-1] if canaries else None,
        feed_read_until=read_until,
        **extra,
    )


def test_a_canary_seen_before_its_deadline_is_compliant_and_shows_the_latency():
    seen = T0 + timedelta(minutes=75)
    result = evaluate_audit_pipeline(snapshot(canary(seen=seen), canary(T0 + timedelta(hours=24)), now=seen))
    assert result.status is Status.COMPLIANT
    assert "75 min" in result.actual and "2025-03-01 07:15:00 UTC" in result.actual
    assert pipeline_measurements(result.details) == {"canary_latency_minutes": 75.0}


def test_not_seen_after_the_deadline_with_the_feed_read_past_it_is_noncompliant():
    now = T0 + timedelta(hours=25)
    result = evaluate_audit_pipeline(snapshot(canary(), now=now, read_until=now))
    assert result.status is Status.NON_COMPLIANT
    assert "Audit records are not arriving: the canary written at 2025-03-01 06:00:00 UTC" in result.message
    assert "after 24 hours" in result.message
    for pointer in ("audit-log-search", "org-audit-enabled", "service health"):
        assert pointer in result.message
    assert pipeline_measurements(result.details) == {}


def test_a_record_that_arrived_after_the_deadline_is_noncompliant_late():
    seen = T0 + timedelta(hours=26)
    result = evaluate_audit_pipeline(snapshot(canary(seen=seen), now=seen, read_until=seen))
    assert result.status is Status.NON_COMPLIANT
    assert "too late" in result.message and "1560 minutes" in result.message
    assert pipeline_measurements(result.details) == {"canary_latency_minutes": 1560.0}


def test_the_first_day_is_not_yet_proven_and_says_when_it_will_be():
    result = evaluate_audit_pipeline(snapshot(canary(), now=T0 + timedelta(hours=2), read_until=T0))
    assert result.status is Status.ERROR and result.actual == "not yet proven"
    assert "2025-03-02 06:00:00 UTC" in result.message
    assert result.details["proven_at"] == "2025-03-02 06:00:00 UTC"


def test_a_failed_canary_write_is_an_error_never_a_verdict():
    ok = canary(seen=T0 + timedelta(minutes=5))
    failed = canary(T0 + timedelta(days=1), failed="403 Forbidden")
    result = evaluate_audit_pipeline(
        replace(snapshot(ok, failed, now=T0 + timedelta(days=1)), write_error="403 Forbidden")
    )
    assert result.status is Status.ERROR and "canary write" in result.message and "403" in result.message


def test_a_feed_not_read_past_the_deadline_is_an_error_not_noncompliant():
    now = T0 + timedelta(hours=30)
    for read_until in (None, T0 + timedelta(hours=23)):
        result = evaluate_audit_pipeline(snapshot(canary(), now=now, read_until=read_until))
        assert result.status is Status.ERROR and "has not been read past" in result.message


def test_unread_blobs_before_the_deadline_make_it_an_error():
    now = T0 + timedelta(hours=30)
    result = evaluate_audit_pipeline(
        snapshot(canary(), now=now, read_until=now, unread_blobs=(T0 + timedelta(hours=1),))
    )
    assert result.status is Status.ERROR and "could not be read yet" in result.message


def test_the_newest_decided_canary_decides():
    now = T0 + timedelta(days=3)
    lost = canary(T0)
    arrived = canary(T0 + timedelta(days=1), seen=T0 + timedelta(days=1, minutes=80))
    pending = canary(T0 + timedelta(days=2, hours=12))
    assert evaluate_audit_pipeline(snapshot(lost, arrived, pending, now=now, read_until=now)).status is Status.COMPLIANT
    lost_later = canary(T0 + timedelta(days=2))
    result = evaluate_audit_pipeline(snapshot(arrived, lost_later, pending, now=now, read_until=now))
    assert result.status is Status.NON_COMPLIANT


def test_never_compliant_without_a_record_seen():
    now = T0 + timedelta(days=10)
    assert evaluate_audit_pipeline(snapshot(now=now, read_until=now)).status is Status.ERROR
    failed_only = canary(failed="timeout")
    assert evaluate_audit_pipeline(snapshot(failed_only, now=now, read_until=now)).status is Status.ERROR
    problem = PipelineSnapshot(now=now, max_delay_hours=24, problem="AUDIT_CANARY_MAILBOX is not set")
    result = evaluate_audit_pipeline(problem)
    assert result.status is Status.ERROR and "AUDIT_CANARY_MAILBOX" in result.message


def test_the_ledger_entry_survives_a_round_trip_and_garbage_is_skipped():
    entry = canary(seen=T0 + timedelta(minutes=3))
    assert Canary.from_json(entry.as_json()) == entry
    assert Canary.from_json("{") is None and Canary.from_json('{"nonce": 1}') is None


def test_a_record_is_the_canary_only_with_its_nonce_on_its_mailbox():
    entry = canary()
    object_id = "EURPR02A001.prod.outlook.com/Microsoft Exchange Hosted Organizations/contoso.onmicrosoft.com/canary"
    assert matches(entry, "Set-Mailbox", object_id, entry.value)
    assert matches(entry, "set-mailbox", "canary@contoso.com", f'"{entry.value}"')
    assert not matches(entry, "Set-Mailbox", object_id.replace("/canary", "/ann"), entry.value)
    assert not matches(entry, "Set-Mailbox", object_id, "mailbox-audit-guard canary 0000000000000000")
    assert not matches(entry, "Set-MailboxFolderPermission", object_id, entry.value)
    assert not matches(replace(entry, failed="x"), "Set-Mailbox", object_id, entry.value)


def test_both_parameter_shapes_are_recognised():
    entry = canary()
    base = {"Id": "r1", "CreationTime": "2025-03-01T06:30:00", "RecordType": 1, "Operation": "Set-Mailbox"}
    as_list = parse_record(
        {**base, "ObjectId": "x/canary", "Parameters": [{"Name": "CustomAttribute15", "Value": entry.value}]}
    )
    as_text = parse_record(
        {**base, "ObjectId": "x/canary", "Parameters": f'-Identity "canary" -CustomAttribute15 "{entry.value}"'}
    )
    for record in (as_list, as_text):
        assert matches(entry, record.operation, record.object_id, record.parameter("customattribute15"))


def test_the_audit_property_canary_keeps_the_whole_days_and_never_goes_below_the_minimum():
    value = audit_property_value("365.00:00:00", 90, [])
    assert value is not None and value.startswith("365.") and value != "365.00:00:00"
    assert 365 < timespan_days(value) < 366
    assert audit_property_value("30.00:00:00", 90, []).startswith("90.")
    assert audit_property_value(None, 90, []) is None


@pytest.mark.parametrize("old", ["365.23:59:59", "365.00:00:01", None])
def test_the_audit_property_canary_is_not_audit_tampering(old):
    value = audit_property_value("365.00:00:00", 90, [])
    raw = {
        "Id": "r1",
        "CreationTime": "2025-03-01T06:30:00",
        "RecordType": 1,
        "Operation": "Set-Mailbox",
        "ObjectId": "x/canary",
        "Parameters": [{"Name": "Identity", "Value": "canary"}, {"Name": "AuditLogAgeLimit", "Value": value}],
    }
    if old:
        raw["ModifiedProperties"] = [{"Name": "AuditLogAgeLimit", "OldValue": old, "NewValue": value}]
    record = parse_record(raw)
    assert tampering([record], None, Context(min_retention_days=90)).alerts == ()
    lowered = parse_record({**raw, "Parameters": [{"Name": "AuditLogAgeLimit", "Value": "364.23:00:00"}]})
    if old:
        assert tampering([lowered], None, Context(min_retention_days=90)).alerts  # a day less still fires


def test_the_control_is_never_fixed_and_runs_only_with_a_canary_mailbox():
    assert CONTROL.id in NOT_REMEDIABLE and CONTROL.id not in UNATTENDED_CONTROLS
    assert CONTROL.plan_fix(None, None) == []
    assert CONTROL.id in OPT_IN_CONTROLS
    assert CONTROL.not_run is not None
    assert "AUDIT_CANARY_MAILBOX" in (CONTROL.not_run(AuditPolicy()) or "")
    assert CONTROL.not_run(replace(AuditPolicy(), canary=CanarySettings(mailbox="canary@contoso.com"))) is None


def test_a_damaged_ledger_entry_newer_than_the_judged_canary_is_an_error_never_the_older_verdict():
    seen = T0 + timedelta(minutes=30)
    judged = canary(seen=seen)
    newer_key = f"canary:{(T0 + timedelta(hours=26)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}:ffff"
    older_key = f"canary:{(T0 - timedelta(hours=26)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}:0000"
    later = T0 + timedelta(hours=27)
    assert evaluate_audit_pipeline(snapshot(judged, now=later, damaged=(older_key,))).status is Status.COMPLIANT
    result = evaluate_audit_pipeline(snapshot(judged, now=later, damaged=(older_key, newer_key)))
    assert result.status is Status.ERROR and "damaged" in result.message and newer_key in result.message
