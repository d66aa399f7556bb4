"""Pure rules of the posture controls: timespans, per-mailbox judgement, bypass and the exception register."""

from datetime import date

import pytest

from shared.config.exception_register import ExceptionFileError, parse_register
from shared.config.settings import AuditPolicy
from shared.controls.audit_actions import required_actions
from shared.controls.audit_bypass import BypassScan, evaluate_bypass
from shared.controls.mailbox_audit_actions import evaluate_mailbox_actions
from shared.controls.mailbox_audit_retention import evaluate_mailbox_retention
from shared.controls.mailbox_scan import (
    MailboxScan,
    timespan_days,
)
from shared.controls.reading import count_rows, stream_into
from shared.exchange.client import Page
from shared.model import Status

TODAY = date(2026, 11, 28)
CIS = {f"Audit{logon}": sorted(actions) for logon, actions in required_actions("cis", True).items()}


def row(identity="id-1", **fields):
    base = {
        "ExternalDirectoryObjectId": identity,
        "UserPrincipalName": f"{identity}@contoso.com",
        "RecipientTypeDetails": "UserMailbox",
        "AuditEnabled": True,
        "DefaultAuditSet": [],
        "AuditLogAgeLimit": "90.00:00:00",
        "PersistedCapabilities": [],
        **CIS,
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    ("text", "days"),
    [("90.00:00:00", 90), ("180.00:00:00", 180), ("00:00:00", 0), ("12:00:00", 0.5), ("1.12:00:00.5", 1.5)],
)
def test_timespans(text, days):
    assert timespan_days(text) == pytest.approx(days, abs=1e-4)


@pytest.mark.parametrize("text", [None, 90, "", "90", "90 days", "1.25:00:00", "-1.00:00:00", "1.00:61:00"])
def test_bad_timespans_are_unreadable(text):
    assert timespan_days(text) is None


def scan_of(*rows, **policy):
    scan = MailboxScan(AuditPolicy(**policy))
    for r in rows:
        scan.add(r)
    return scan


def test_case_insensitive_superset_with_extra_actions_is_compliant():
    lowered = {key: [a.lower() for a in value] + ["SomethingNew"] for key, value in CIS.items()}
    assert evaluate_mailbox_actions(scan_of(row(**lowered)), AuditPolicy()).status is Status.COMPLIANT


def test_audit_enabled_false_is_a_finding_even_with_full_lists():
    result = evaluate_mailbox_actions(scan_of(row(AuditEnabled=False)), AuditPolicy())
    assert result.status is Status.NON_COMPLIANT


@pytest.mark.parametrize(
    "broken",
    [
        {"AuditEnabled": "True"},
        {"AuditOwner": 5},
        {"AuditLogAgeLimit": "forever"},
        {"DefaultAuditSet": "Admin"},
        {"ExternalDirectoryObjectId": None, "Guid": None, "UserPrincipalName": None},
    ],
)
def test_odd_values_are_errors_never_compliant(broken):
    scan = scan_of(row(**broken))
    assert evaluate_mailbox_actions(scan, AuditPolicy()).status is Status.ERROR
    assert evaluate_mailbox_retention(scan, AuditPolicy()).status is Status.ERROR


def test_null_lists_mean_empty_and_non_ascii_names_are_fine():
    scan = scan_of(row("Zoë-Ødegård", AuditAdmin=None, PersistedCapabilities=None))
    result = evaluate_mailbox_actions(scan, AuditPolicy())
    assert result.status is Status.NON_COMPLIANT
    assert result.details["findings"][0]["missing"]["Admin"]


def test_out_of_scope_types_are_skipped_but_a_missing_type_is_unreadable():
    scan = scan_of(row(RecipientTypeDetails="RoomMailbox", AuditEnabled=False))
    assert (scan.users, scan.shared, scan.unreadable) == (0, 0, 0)
    for odd in (None, 5, ""):
        scan = scan_of(row(RecipientTypeDetails=odd, AuditLogAgeLimit="00:00:00"))
        assert scan.unreadable == 1
        assert evaluate_mailbox_retention(scan, AuditPolicy()).status is Status.ERROR


class FakeScan:
    def __init__(self):
        self.rows, self.incomplete = [], None

    def add(self, r):
        self.rows.append(r)

    def reset(self):
        self.rows = []


def test_a_truncation_warning_without_next_page_marks_the_read_incomplete():
    target = FakeScan()
    stream_into(iter([Page([{"a": 1}], ["There are more results available than are currently displayed."], 1)]), target)
    assert target.incomplete


def test_a_restarted_query_discards_earlier_pages():
    target = FakeScan()
    pages = [
        Page([{"a": 1}], [], 1),
        Page([{"a": 2}], [], 2),
        Page([{"a": 1}], [], 1, restarted=True),
        Page([{"a": 2}], [], 2),
    ]
    stream_into(iter(pages), target)
    assert target.rows == [{"a": 1}, {"a": 2}]
    assert count_rows(iter(pages)) == 2


def test_bypass_rules_and_exceptions():
    register = parse_register(
        [{"control": "audit-bypass", "identity": "svc-ok", "reason": "r", "approved_by": "a", "expires": "2026-12-31"}],
        TODAY,
    )
    scan = BypassScan(AuditPolicy(exceptions=register))
    for entry in (
        {"Name": "svc-ok", "Guid": "g1", "AuditBypassEnabled": True},
        {"Name": "svc-bad", "Guid": "g2", "AuditBypassEnabled": True},
        {"Name": "svc-off", "Guid": "g3", "AuditBypassEnabled": False},
    ):
        scan.add(entry)
    result = evaluate_bypass(scan, scan.policy)
    assert result.status is Status.NON_COMPLIANT
    assert [f["identity"] for f in result.details["findings"]] == ["svc-bad"]
    assert result.details["exceptions_used"][0]["matched"] == "svc-ok"


def test_bypass_flag_that_is_not_a_boolean_is_an_error():
    scan = BypassScan(AuditPolicy())
    scan.add({"Name": "svc", "AuditBypassEnabled": "true"})
    assert evaluate_bypass(scan, scan.policy).status is Status.ERROR


@pytest.mark.parametrize("document", [{}, "x", [1], [[]], None])
def test_a_register_that_is_not_a_list_of_objects_is_refused(document):
    with pytest.raises(ExceptionFileError):
        parse_register(document, TODAY)


def test_hostile_register_values_are_bounded_and_refused_not_used():
    entry = {
        "control": "audit-bypass",
        "identity": "x' -or Name -like '*",
        "reason": "r" * 5000,
        "approved_by": "a",
        "expires": "2099-01-01",
        "junk": {"nested": [1] * 1000},
    }
    register = parse_register([entry], TODAY)
    assert not register.valid
    [rejected] = register.rejected
    assert all(len(value) <= 200 for value in rejected["entry"].values())


def test_an_exceptions_file_saved_with_a_bom_is_read(tmp_path):
    from shared.config.exception_register import load_register

    path = tmp_path / "exceptions.json"
    path.write_bytes(
        b"\xef\xbb\xbf" + b'[{"control": "audit-bypass", "identity": "svc", "reason": "r", '
        b'"approved_by": "a", "expires": "2099-01-01"}]'
    )
    assert load_register(path, TODAY).find("audit-bypass", "svc") is not None
