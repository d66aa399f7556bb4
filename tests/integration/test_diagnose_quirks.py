"""diagnose against the emulator with and without each quirk of the real service (issue 10, handbook §10).

Each test runs diagnose twice, once with the quirk and once without, and asserts what an administrator sending the
report back would need to see: the assumption that failed (named), or the shape that was recorded.
"""

from __future__ import annotations

from typing import Any

import pytest

from emulator.faults import Fault
from tests.integration.helpers import CUSTOMISED_MAILBOX
from tests.support.cli import cli_json, run_cli
from tests.support.tenant import scenario

PAGED = {"generate_mailboxes": {"count": 7}, "generate_bypass_associations": {"count": 5, "enabled_every": 0}}
QUIET = {
    "paging_warning_every_page": False,
    "reject_dollar_booleans": False,
    "anchor_bound_cursors": False,
    "real_error_bodies": False,
}


def diagnose(emu: Any, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(emu, "diagnose", "--json", *args)
    return result.returncode, cli_json(result)


def item(document: dict[str, Any], ident: str) -> dict[str, Any]:
    [found] = [entry for entry in document["assumptions"] if entry["id"] == ident]
    return found


def tenant(start_emulator: Any, *, quirks: dict[str, bool] | None = None, **fields: Any) -> Any:
    return start_emulator(scenario(**PAGED, quirks=quirks or {}, **fields))


# 1. 200 without rows ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "shape"), [("ok_no_value", "no value key"), ("ok_null_value", "value: null"), (None, "value: list of 0")]
)
def test_1_the_shape_of_an_empty_answer_is_recorded_and_read_as_zero_rows(start_emulator, fault, shape):
    emu = tenant(start_emulator)
    if fault:
        emu.add_fault(Fault(fault, cmdlet="Get-Mailbox", times=-1))
    _code, document = diagnose(emu)
    assert item(document, "answers.empty")["verdict"] == "held"
    assert f"Get-Mailbox: {shape}" in item(document, "answers.empty-shapes")["observed"]


# 2. errors inside a 200 -------------------------------------------------------------------------------------------


def test_2_an_error_inside_a_200_fails_the_read_and_adminapi_errors_fail_paging(start_emulator):
    emu = tenant(start_emulator)
    emu.add_fault(Fault("ok_error", cmdlet="Get-AdminAuditLogConfig", times=-1))
    emu.add_fault(
        Fault(
            "adminapi_errors",
            cmdlet="Get-MailboxAuditBypassAssociation",
            times=-1,
            errors=["The operation couldn't be performed because object 'x' couldn't be found."],
        )
    )
    code, document = diagnose(emu)
    assert code == 1
    assert item(document, "read.Get-AdminAuditLogConfig")["verdict"] == "failed"
    paging = item(document, "paging.Get-MailboxAuditBypassAssociation")
    assert paging["verdict"] == "failed" and "@adminapi.errors" in paging["observed"]
    assert set(document["failed"]) == {"read.Get-AdminAuditLogConfig", "paging.Get-MailboxAuditBypassAssociation"}

    clean = tenant(start_emulator)
    assert diagnose(clean)[0] == 0


# 3. stale read-back ----------------------------------------------------------------------------------------------

CUSTOMISED = CUSTOMISED_MAILBOX


@pytest.mark.parametrize("stale", [True, False])
def test_3_a_stale_replica_cannot_fail_the_write_test_which_writes_only_values_already_there(start_emulator, stale):
    emu = start_emulator(scenario(mailboxes=[CUSTOMISED]))
    if stale:
        emu.add_fault(Fault("stale_reads", cmdlet="Set-Mailbox", reads=3))
    code, document = diagnose(emu, "--write-test-mailbox", "probe@contoso.com")
    assert item(document, "write.shapes")["verdict"] == "held"
    assert code == 0, document["failed"]


# 4. dehydrated tenants -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dehydrated", [True, False])
def test_4_a_dehydrated_tenant_is_named_with_the_wait_it_means(start_emulator, dehydrated):
    emu = tenant(start_emulator, organization_config={"IsDehydrated": dehydrated})
    code, document = diagnose(emu)
    observed = item(document, "tenant.dehydrated")["observed"]
    assert code == 0
    assert ("Deferred" in observed and "60 minutes" in observed) is dehydrated
    assert emu.invocations("Enable-OrganizationCustomization") == []  # diagnose never customises


# 5. booleans in filters ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reject", [True, False])
def test_5_the_quoted_filter_works_and_what_the_dollar_form_does_is_recorded(start_emulator, reject):
    emu = tenant(
        start_emulator, quirks={"reject_dollar_booleans": reject}, mailboxes=[{**CUSTOMISED, "AuditEnabled": False}]
    )
    _code, document = diagnose(emu)
    booleans = item(document, "filter.booleans")
    assert booleans["verdict"] == "held"
    assert booleans["details"]["quoted"] >= 1
    assert booleans["details"]["dollar_refused"] is reject
    if not reject:
        assert booleans["details"]["dollar"] == booleans["details"]["quoted"]


# 6. the truncation warning on every page -------------------------------------------------------------------------


@pytest.mark.parametrize("every_page", [True, False])
def test_6_whether_the_truncation_warning_rides_on_pages_with_a_next_page_is_recorded(start_emulator, every_page):
    emu = tenant(start_emulator, quirks={"paging_warning_every_page": every_page})
    code, document = diagnose(emu)
    assert code == 0  # paging, not truncation: no assumption fails over it
    assert ("rode on" in item(document, "answers.warnings")["observed"]) is every_page
    assert item(document, "paging.Get-Mailbox")["verdict"] == "held"


# 7. redirects ----------------------------------------------------------------------------------------------------


def test_7_a_redirect_is_named_with_its_host_and_the_read_fails_without_sending_the_token_there(start_emulator):
    emu = tenant(start_emulator)
    emu.add_fault(Fault("redirect", cmdlet="Get-OrganizationConfig", times=-1))
    code, document = diagnose(emu)
    assert code == 1
    read = item(document, "read.Get-OrganizationConfig")
    assert read["verdict"] == "failed" and "EXO_ENDPOINT" in read["observed"]
    redirects = item(document, "redirects")
    assert redirects["details"]["hosts"] == ["xyz01b.outlook.office365.com"]
    assert all(request.host != "xyz01b.outlook.office365.com" for request in emu.requests)

    clean = tenant(start_emulator)
    assert item(diagnose(clean)[1], "redirects")["observed"] == "no redirect"


# 8. real error bodies --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("real", [True, False])
def test_8_a_refused_cmdlet_is_a_permission_failure_whatever_the_body_looks_like(start_emulator, real):
    emu = tenant(start_emulator, quirks={"real_error_bodies": real})
    emu.add_fault(Fault("status", cmdlet="Get-AdminAuditLogConfig", times=-1, status=403, body="envelope"))
    code, document = diagnose(emu)
    read = item(document, "read.Get-AdminAuditLogConfig")
    assert (code, read["verdict"]) == (1, "failed")
    assert "403" in read["observed"]
    assert "role" in read["advice"].lower()


# 9. anchor-bound cursors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bound", [True, False])
def test_9_paging_holds_whether_or_not_cursors_are_bound_to_their_anchor(start_emulator, bound):
    emu = tenant(start_emulator, quirks={"anchor_bound_cursors": bound})
    code, document = diagnose(emu)
    assert item(document, "paging.Get-Mailbox")["verdict"] == "held"
    assert item(document, "paging.Get-MailboxAuditBypassAssociation")["verdict"] == "held"
    assert code == 0


def test_every_quirk_off_is_still_a_clean_bill_of_health(start_emulator):
    emu = tenant(start_emulator, quirks=QUIET)
    code, document = diagnose(emu)
    assert code == 0, document["failed"]


# 10. the China host ----------------------------------------------------------------------------------------------


def test_10_the_endpoint_is_reported_and_china_names_both_hosts(start_emulator):
    emu = tenant(start_emulator)
    document = diagnose(emu)[1]
    endpoint = item(document, "endpoint")
    assert endpoint["details"]["overridden"] is True  # the emulator is reached through EXO_ENDPOINT
    assert "outlook.office365.cn" not in endpoint["observed"]  # only said for the China cloud

    from shared.diagnose.assumptions import judge_endpoint

    china = judge_endpoint("https://partner.outlook.cn", "china", "https://partner.outlook.cn")
    assert "outlook.office365.cn" in china.observed and "partner.outlook.cn" in china.observed
    assert china.details["overridden"] is False
