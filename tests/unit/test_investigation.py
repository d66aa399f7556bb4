"""The investigation search's pure parts: argument checks, the slicing plan, record rows, the manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.investigation.manifest import ExportState, build_manifest
from shared.investigation.request import SearchRequest, Window, parse_request, parse_time, query_body
from shared.investigation.rows import COLUMNS, csv_row, matches_mailboxes
from shared.investigation.slicing import Plan, SliceResult, initial_slices, run_plan

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def parse(**kwargs):
    kwargs.setdefault("start", "2026-05-09T00:00:00Z")
    kwargs.setdefault("end", "2026-05-10T00:00:00Z")
    return parse_request(now=NOW, max_days=180, **kwargs)


def test_times_are_utc_unless_they_carry_an_offset_and_now_is_now():
    assert parse_time("2026-05-01T08:00:00", NOW) == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert parse_time("2026-05-01T10:00:00+02:00", NOW) == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert parse_time("2026-05-01", NOW) == datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_time("now", NOW) == NOW
    assert parse_time("yesterday", NOW) is None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"start": "2026-05-10T00:00:00Z", "end": "2026-05-09T00:00:00Z"}, "must be after --start"),
        ({"start": "2026-05-09T00:00:00Z", "end": "2026-05-09T00:00:00Z"}, "must be after --start"),
        ({"start": "2025-11-01T00:00:00Z"}, "beyond the audit log's retention: at most 180 days"),
        ({"end": "2026-05-11T00:00:00Z"}, "is in the future"),
        ({"start": "soon"}, "--start: 'soon' is not an ISO 8601 time"),
        ({"record_types": ["MailboxLogin"]}, "'MailboxLogin' is not an audit log record type"),
        ({"ips": ["10.0.0.256"]}, "'10.0.0.256' is not an IPv4 or IPv6 address"),
        ({"users": ["ann @contoso.com"]}, "--user: a value with white space"),
        ({"keyword": "  "}, "--keyword: empty"),
    ],
)
def test_bad_arguments_are_refused_with_the_option_named(kwargs, expected):
    parsed = parse(**kwargs)
    assert parsed.request is None
    assert any(expected in problem for problem in parsed.problems), parsed.problems


def test_good_arguments_are_normalised():
    parsed = parse(
        record_types=["exchangeitem", "ExchangeItem"],
        ips=["2001:DB8::1"],
        users=["Ann@Contoso.com"],
        mailboxes=["Bob@Contoso.com"],
        operations=["MailboxLogin", "SendAs"],
    )
    assert parsed.problems == []
    request = parsed.request
    assert request is not None
    assert request.record_types == ("ExchangeItem",)  # the enumeration's spelling, once
    assert request.ips == ("2001:db8::1",)
    assert request.users == ("ann@contoso.com",) and request.mailboxes == ("bob@contoso.com",)


def test_the_query_body_carries_only_the_filters_given():
    request = SearchRequest(Window(NOW - timedelta(hours=1), NOW), operations=("Send",), ips=("192.0.2.1",))
    body = query_body(request, Window(NOW - timedelta(minutes=30), NOW), "x")
    assert body == {
        "displayName": "x",
        "filterStartDateTime": "2026-05-10T11:30:00.000Z",
        "filterEndDateTime": "2026-05-10T12:00:00.000Z",
        "operationFilters": ["Send"],
        "ipAddressFilters": ["192.0.2.1"],
    }


def test_windows_are_cut_into_24_hour_slices_in_order():
    slices = initial_slices(Window(NOW - timedelta(days=2, hours=6), NOW))
    assert [s.duration for s in slices] == [timedelta(hours=24), timedelta(hours=24), timedelta(hours=6)]
    assert slices[0].start == NOW - timedelta(days=2, hours=6) and slices[-1].end == NOW


def fake_service(limit: int, records: list[datetime]):
    """run_slice over a log of record times: over `limit` in a window is limit-exceeded."""
    calls: list[Window] = []

    def run(window: Window, splittable: bool) -> SliceResult:
        calls.append(window)
        count = sum(window.start <= t < window.end for t in records)
        over = count > limit
        return SliceResult(
            window, "q", "succeeded", count, min(count, limit) if not (over and splittable) else 0, over, True
        )

    return run, calls


def test_a_window_over_the_limit_is_halved_until_every_part_is_complete():
    records = [NOW - timedelta(hours=1, minutes=i) for i in range(8)]  # 8 records within 8 minutes
    run, _ = fake_service(3, records)
    plan = run_plan(Window(NOW - timedelta(hours=2), NOW), run, timedelta(minutes=1), Plan())
    assert plan.complete
    leaves = [r.window for r, split in plan.results if not split]
    assert sorted(leaves) == leaves and leaves[0].start == NOW - timedelta(hours=2) and leaves[-1].end == NOW
    assert all(leaves[i].end == leaves[i + 1].start for i in range(len(leaves) - 1))  # no gap, no overlap
    assert sum(r.received for r, split in plan.results if not split) == 8


def test_a_slice_that_cannot_be_halved_any_more_is_missing_and_named():
    records = [NOW - timedelta(minutes=30)] * 5  # five records in the same second
    run, _ = fake_service(3, records)
    plan = run_plan(Window(NOW - timedelta(hours=1), NOW), run, timedelta(minutes=10), Plan())
    assert not plan.complete
    (missing,) = plan.missing
    assert missing.window.duration < timedelta(minutes=20) and missing.window.start <= records[0] < missing.window.end
    assert "record-count limit" in missing.reason and "10 min" in missing.reason


def test_an_interruption_keeps_what_was_done_and_what_was_not_run():
    done: list[Window] = []

    def run(window: Window, splittable: bool) -> SliceResult:
        if done:
            raise KeyboardInterrupt
        done.append(window)
        return SliceResult(window, "q1", "succeeded", 0, 0, False, True)

    plan = Plan()
    with pytest.raises(KeyboardInterrupt):
        run_plan(Window(NOW - timedelta(days=3), NOW), run, timedelta(minutes=1), plan)
    assert [r.window for r, _ in plan.results] == done
    assert len(plan.pending) == 2 and not plan.complete


def test_a_failed_query_is_missing_with_its_status():
    plan = run_plan(
        Window(NOW - timedelta(hours=1), NOW),
        lambda w, s: SliceResult(w, "q9", "failed", error="the query ended failed"),
        timedelta(minutes=1),
        Plan(),
    )
    assert "q9 did not succeed (failed)" in plan.missing[0].reason


def test_a_csv_row_has_the_common_columns_and_the_raw_record_last():
    record = {
        "id": "r1",
        "createdDateTime": "2026-05-01T08:00:00Z",
        "operation": "=cmd|' /C calc'!A0",
        "userPrincipalName": "ann@contoso.com",
        "auditData": {"MailboxOwnerUPN": "Bob@Contoso.com", "Id": "r1"},
    }
    row = csv_row(record)
    assert len(row) == len(COLUMNS) and COLUMNS[-1] == "record"
    assert row[COLUMNS.index("operation")] == "'=cmd|' /C calc'!A0"
    assert row[COLUMNS.index("mailboxOwnerUPN")] == "Bob@Contoso.com"
    assert json.loads(row[-1]) == record
    assert matches_mailboxes(record, ("bob@contoso.com",)) and not matches_mailboxes(record, ("ann@contoso.com",))
    assert matches_mailboxes(record, ())


def test_the_manifest_says_complete_only_when_nothing_is_missing_and_interrupted_is_exit_2():
    request = SearchRequest(Window(NOW - timedelta(hours=1), NOW))
    state = ExportState(request, "t", "https://graph.microsoft.com/beta", "beta", "jsonl", NOW)
    run_plan(request.window, lambda w, s: SliceResult(w, "q", "succeeded", 0, 0, False, True), timedelta(1), state.plan)
    state.finished = NOW
    manifest = build_manifest(state)
    assert (manifest["status"], manifest["complete"], manifest["exit_code"]) == ("complete", True, 0)
    assert manifest["queries"][0]["query_id"] == "q" and manifest["filters"]["start"] == "2026-05-10T11:00:00.000Z"
    state.interrupted = True
    state.plan.pending = [Window(NOW, NOW + timedelta(hours=1))]
    manifest = build_manifest(state)
    assert (manifest["status"], manifest["complete"], manifest["exit_code"]) == ("interrupted", False, 2)
    assert manifest["missing"][0]["reason"] == "not run: the export was interrupted"


def test_an_export_whose_manifest_cannot_be_written_is_never_complete(tmp_path):
    from shared.investigation.export import Exporter

    exporter = Exporter.__new__(Exporter)  # only the manifest writer is exercised: no client is needed
    exporter.out_dir = tmp_path / "gone"  # the directory vanished (or the disk is full): the write fails
    manifest = {"complete": True, "status": "complete", "exit_code": 0, "error": None}
    exporter._write_manifest(manifest)
    assert manifest["complete"] is False and manifest["status"] == "error" and manifest["exit_code"] == 2
    assert "cannot write the manifest" in manifest["error"]
