"""The client and the controls against the real service's wire quirks (exchange-admin-api.md §10; issue 10 items
1, 2, 5-10): each quirk as the emulator plays it, and what an administrator then sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from emulator import Fault
from shared.config.clouds import CLOUDS
from shared.config.settings import Settings
from shared.controls.mailbox_scan import NOT_EXPLICIT_FILTER
from shared.controls.reading import single_row
from shared.exchange.auth import token_provider_for
from shared.exchange.client import AUDIT_LOG_ANCHOR_GUID, ExchangeClient, system_anchor
from shared.exchange.errors import (
    ExchangeBadRequest,
    ExchangeIncompleteRead,
    ExchangeNotFound,
    ExchangePermissionError,
    ExchangeProtocolError,
    ExchangeProxyRequired,
    ExchangeRedirect,
    PaginationExpired,
    TenantDehydrated,
    parse_error_body,
)
from tests.integration.helpers import FAST, bearer_tokens, client_for
from tests.support.cli import cli_json, run_cli
from tests.support.tenant import TENANT_ID, scenario

FIELDS = ("ExternalDirectoryObjectId", "UserPrincipalName")
MORE_RESULTS = "There are more results available than are currently displayed"
DEHYDRATED_TYPE = "Microsoft.Exchange.Configuration.Tasks.InvalidOperationInDehydratedContextException"
FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "exo" / "graph2otel-live-2026-07-23.txt"
FAST_ENV = {"MAILBOX_REMEDIATION_WRITES_PER_SECOND": "50"}


def many(count, **extra):
    return scenario(generate_mailboxes={"count": count}, **extra)


def check(emu, control, env=None):
    result = run_cli(emu, "check", "--control", control, "--json", env={**FAST_ENV, **(env or {})})
    [found] = cli_json(result)["controls"]
    return result.returncode, found


# ---- 1. 200 without rows --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ok_no_value", "ok_null_value"])
def test_a_write_answered_without_value_is_done_and_the_read_back_decides(start_emulator, monkeypatch, kind):
    emu = start_emulator(scenario(mailboxes=[{"Name": "ann"}]))
    emu.add_fault(Fault(kind, cmdlet="Set-Mailbox"))
    result = client_for(emu, monkeypatch).invoke("Set-Mailbox", {"Identity": "ann", "AuditLogAgeLimit": "200.00:00:00"})
    assert (result.rows, result.warnings) == ([], [])
    assert emu.tenant.mailbox("ann")["AuditLogAgeLimit"] == "200.00:00:00"


@pytest.mark.parametrize("kind", ["ok_no_value", "ok_null_value"])
def test_an_empty_read_is_zero_rows_but_a_singleton_still_needs_one(start_emulator, monkeypatch, kind):
    emu = start_emulator(scenario(bypass_associations=[]))
    emu.add_fault(Fault(kind, cmdlet="Get-MailboxAuditBypassAssociation"))
    client = client_for(emu, monkeypatch)
    assert client.invoke("Get-MailboxAuditBypassAssociation", {"ResultSize": "Unlimited"}).rows == []
    emu.add_fault(Fault(kind, cmdlet="Get-OrganizationConfig"))
    empty = client.invoke("Get-OrganizationConfig").rows
    assert empty == []
    with pytest.raises(ExchangeProtocolError, match="exactly one object, got 0"):
        single_row(empty, "Get-OrganizationConfig")


def test_an_org_config_without_value_makes_the_control_error_not_compliant(start_emulator):
    emu = start_emulator()
    emu.add_fault(Fault("ok_no_value", cmdlet="Get-OrganizationConfig", times=-1))
    code, control = check(emu, "org-audit-enabled")
    assert control["status"] == "Error" and code != 0
    assert "exactly one object" in control["message"]


# ---- 2. errors inside a 200 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["error", "@odata.error"])
def test_a_dehydrated_error_inside_a_200_is_the_dehydrated_error(start_emulator, monkeypatch, key):
    emu = start_emulator()
    emu.add_fault(
        Fault(
            "ok_error",
            cmdlet="Set-OrganizationConfig",
            key=key,
            exception_type=DEHYDRATED_TYPE,
            message="The command you tried to run isn't currently allowed in your organization. To run this "
            "command, you first need to run the command: Enable-OrganizationCustomization.",
        )
    )
    with pytest.raises(TenantDehydrated) as caught:
        client_for(emu, monkeypatch).invoke("Set-OrganizationConfig", {"AuditDisabled": False})
    assert caught.value.exception_type == DEHYDRATED_TYPE
    assert "(HTTP 200)" in str(caught.value) and caught.value.status == 200
    assert len(emu.invocations("Set-OrganizationConfig")) == 1  # a client error: not retried


def test_a_not_found_inside_a_200_is_not_found(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(
        Fault(
            "ok_error",
            cmdlet="Get-Mailbox",
            status=404,
            exception_type="Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
            message="The operation couldn't be performed because object 'x' couldn't be found.",
        )
    )
    with pytest.raises(ExchangeNotFound):
        client_for(emu, monkeypatch).invoke("Get-Mailbox", {"Identity": "x"})


def test_adminapi_errors_on_a_read_fail_closed(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(Fault("adminapi_errors", cmdlet="Get-OrganizationConfig", errors=["Active Directory timed out."]))
    with pytest.raises(ExchangeIncompleteRead, match="Active Directory timed out"):
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")


def test_adminapi_errors_on_a_write_become_warnings_for_the_read_back(start_emulator, monkeypatch):
    emu = start_emulator(scenario(mailboxes=[{"Name": "ann"}]))
    emu.add_fault(Fault("adminapi_errors", cmdlet="Set-Mailbox", errors=["Couldn't update the arbitration mailbox."]))
    result = client_for(emu, monkeypatch).invoke("Set-Mailbox", {"Identity": "ann", "AuditEnabled": True})
    assert result.errors == ["Couldn't update the arbitration mailbox."]
    assert "Exchange reported an error: Couldn't update the arbitration mailbox." in result.warnings
    assert emu.tenant.mailbox("ann")["AuditEnabled"] is True


def test_a_mailbox_scan_with_adminapi_errors_is_error_with_the_texts_in_its_evidence(start_emulator):
    emu = start_emulator(many(30))
    emu.add_fault(
        Fault("adminapi_errors", cmdlet="Get-Mailbox", errors=["The mailbox database MDB01 is offline."], times=-1)
    )
    code, control = check(emu, "mailbox-audit-retention")
    assert control["status"] == "Error" and code != 0
    assert "MDB01 is offline" in control["message"]
    assert any("MDB01 is offline" in warning for warning in control["details"]["warnings"])


def test_bypass_associations_with_adminapi_errors_are_not_compliant(start_emulator):
    emu = start_emulator(scenario(bypass_associations=[{"Name": "svc"}]))
    emu.add_fault(Fault("adminapi_errors", cmdlet="Get-MailboxAuditBypassAssociation", times=-1))
    _, control = check(emu, "audit-bypass")
    assert control["status"] == "Error"


# ---- 5. booleans in filters -----------------------------------------------------------------------------------


def test_the_explicit_enable_filter_quotes_its_booleans_and_the_service_accepts_it(start_emulator):
    assert "$" not in NOT_EXPLICIT_FILTER and "AuditEnabled -ne 'True'" in NOT_EXPLICIT_FILTER
    emu = start_emulator(scenario(mailboxes=[{"Name": "ann"}, {"Name": "bob", "AuditEnabled": True}]))
    assert emu.quirks["reject_dollar_booleans"]
    _, control = check(emu, "mailbox-audit-actions", env={"MAILBOX_AUDIT_CHECK_EXPLICIT_ENABLE": "true"})
    assert control["status"] != "Error", control["message"]
    [counted] = [call for call in emu.invocations("Get-Mailbox") if "Filter" in call.body["CmdletInput"]["Parameters"]]
    assert counted.body["CmdletInput"]["Parameters"]["Filter"] == NOT_EXPLICIT_FILTER
    assert control["details"]["not_explicitly_enabled"] == 1  # ann; bob is explicitly enabled


# ---- 6. the truncation warning on every page ------------------------------------------------------------------


def test_paging_warnings_are_dropped_from_pages_with_a_next_link(start_emulator, monkeypatch):
    emu = start_emulator(many(2500))
    pages = list(client_for(emu, monkeypatch).pages("Get-Mailbox", {"ResultSize": "Unlimited"}, select=FIELDS))
    assert [len(p.rows) for p in pages] == [1000, 1000, 500]
    assert emu.quirks["paging_warning_every_page"]  # pages 1 and 2 came with the "more results" warning
    assert [p.warnings for p in pages] == [[], [], []]


def test_other_warnings_on_a_page_with_a_next_link_are_kept(start_emulator, monkeypatch):
    emu = start_emulator(many(2500))
    original = emu._exchange._success

    def with_extra(req, path_tenant, rows, warnings, next_link):
        return original(req, path_tenant, rows, [*warnings, "Micro delay applied. Actual delayed: 5 msecs"], next_link)

    monkeypatch.setattr(emu._exchange, "_success", with_extra)
    pages = list(client_for(emu, monkeypatch).pages("Get-Mailbox", {"ResultSize": "Unlimited"}, select=FIELDS))
    assert [p.warnings for p in pages] == [["Micro delay applied. Actual delayed: 5 msecs"]] * 3


def test_a_complete_scan_shows_no_truncation_warning_and_a_cut_one_is_error(start_emulator, monkeypatch):
    emu = start_emulator(many(2300))
    _, control = check(emu, "mailbox-audit-retention")
    assert control["status"] != "Error", control["message"]
    assert control["details"]["mailboxes_scanned"] == 2300
    assert not any(MORE_RESULTS in warning for warning in control["details"]["warnings"])
    result = client_for(emu, monkeypatch).invoke("Get-Mailbox", {"ResultSize": "10"}, select=FIELDS)
    assert any(MORE_RESULTS in warning for warning in result.warnings)  # a last page without a nextLink


def test_the_old_emulator_behaviour_gives_the_same_complete_scan(start_emulator):
    emu = start_emulator(many(2300, quirks={"paging_warning_every_page": False}))
    _, control = check(emu, "mailbox-audit-retention")
    assert control["status"] != "Error" and control["details"]["mailboxes_scanned"] == 2300


# ---- 7. redirects ---------------------------------------------------------------------------------------------


def regional_client(emu, monkeypatch, endpoint="https://outlook.office365.com"):
    """A client configured for the real global host, answered in process by the emulator (also on the regional
    host a redirect names): nothing leaves the process."""
    env = emu.env("secret")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", env["REQUESTS_CA_BUNDLE"])
    settings = Settings.from_env(env)
    emu.serve_host("outlook.office365.com")
    emu.serve_host("xyz01b.outlook.office365.com")
    session = emu.mount(requests.Session())
    return ExchangeClient(endpoint, settings.tenant_id, token_provider_for(settings), policy=FAST, session=session)


def test_a_redirect_outside_the_configured_host_is_a_typed_error_and_the_token_stays_home(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(Fault("redirect", cmdlet="Get-OrganizationConfig"))
    with pytest.raises(ExchangeRedirect) as caught:
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")
    assert caught.value.location_host == "xyz01b.outlook.office365.com"
    assert "EXO_ENDPOINT" in str(caught.value) and "server error" not in str(caught.value)
    assert len(emu.invocations("Get-OrganizationConfig")) == 1  # not a server error: not retried


def test_a_regional_redirect_is_followed_with_the_same_post_and_the_host_is_pinned(start_emulator, monkeypatch):
    emu = start_emulator(many(2500))
    emu.add_fault(Fault("redirect", cmdlet="Get-Mailbox"))
    client = regional_client(emu, monkeypatch)
    pages = list(client.pages("Get-Mailbox", {"ResultSize": "Unlimited"}, select=FIELDS))
    assert sum(len(p.rows) for p in pages) == 2500
    calls = emu.invocations("Get-Mailbox")
    assert [c.host for c in calls] == ["outlook.office365.com"] + ["xyz01b.outlook.office365.com"] * 3
    assert {c.method for c in calls} == {"POST"}
    assert all(c.body == calls[0].body for c in calls)
    assert {c.headers["x-anchormailbox"] for c in calls} == {calls[0].headers["x-anchormailbox"]}
    assert calls[1].query == {"$select": ",".join(FIELDS)}  # the Location's path and query, port 446 -> 443
    assert client.pinned_host == "xyz01b.outlook.office365.com"
    client.invoke("Get-OrganizationConfig")
    assert emu.invocations("Get-OrganizationConfig")[0].host == "xyz01b.outlook.office365.com"


@pytest.mark.parametrize("status", [503, 401])
def test_a_retry_after_a_redirect_goes_to_the_pinned_host(start_emulator, monkeypatch, status):
    emu = start_emulator()
    emu.add_fault(Fault("redirect", cmdlet="Get-OrganizationConfig"))
    emu.add_fault(Fault("status", cmdlet="Get-OrganizationConfig", status=status))  # on the pinned host
    client = regional_client(emu, monkeypatch)
    assert client.invoke("Get-OrganizationConfig").rows
    hosts = [c.host for c in emu.invocations("Get-OrganizationConfig")]
    assert hosts == ["outlook.office365.com"] + ["xyz01b.outlook.office365.com"] * 2


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example/adminapi/beta/x/InvokeCommand",
        "https://outlook.office365.com.evil.example/adminapi/beta/x/InvokeCommand",
        "http://xyz01b.outlook.office365.com/adminapi/beta/x/InvokeCommand",
        "https://xyz01b.outlook.office365.com:8443/adminapi/beta/x/InvokeCommand",
        "https://outlook.office.com/adminapi/beta/x/InvokeCommand",
    ],
)
def test_a_redirect_anywhere_else_is_refused_before_any_token_goes_there(start_emulator, monkeypatch, location):
    emu = start_emulator()
    emu.add_fault(Fault("redirect", cmdlet="Get-OrganizationConfig", status=307, location=location))
    client = regional_client(emu, monkeypatch)
    with pytest.raises(ExchangeRedirect, match="EXO_ENDPOINT"):
        client.invoke("Get-OrganizationConfig")
    assert [c.host for c in emu.invocations()] == ["outlook.office365.com"]
    assert client.pinned_host is None


def test_a_pinned_run_refuses_next_links_and_redirects_to_other_hosts(start_emulator, monkeypatch):
    emu = start_emulator(many(1500))
    emu.add_fault(Fault("redirect", cmdlet="Get-OrganizationConfig"))
    client = regional_client(emu, monkeypatch)
    client.invoke("Get-OrganizationConfig")
    emu.add_fault(
        Fault("redirect", cmdlet="Get-AdminAuditLogConfig", location="https://outlook.office365.com/adminapi/x")
    )
    with pytest.raises(ExchangeRedirect, match=r"pinned to xyz01b\.outlook\.office365\.com"):
        client.invoke("Get-AdminAuditLogConfig")
    emu.add_fault(Fault("foreign_next_link", cmdlet="Get-Mailbox"))
    with pytest.raises(ExchangeProtocolError, match="refused to follow a link"):
        client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=FIELDS)
    assert emu.foreign_requests == []


def test_the_token_only_goes_to_the_configured_and_the_pinned_host(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(Fault("redirect", cmdlet="Get-OrganizationConfig"))
    regional_client(emu, monkeypatch).invoke("Get-OrganizationConfig")
    tokens = bearer_tokens(emu)
    for request in emu.requests:
        if any(token in str(request.headers) for token in tokens):
            assert request.host in ("outlook.office365.com", "xyz01b.outlook.office365.com")


# ---- 8. real error bodies -------------------------------------------------------------------------------------


def test_each_real_error_body_gets_its_typed_classification(start_emulator, monkeypatch):
    emu = start_emulator(
        scenario(
            mailboxes=[{"Name": "ann"}],
            organization_config={"IsDehydrated": True},
            admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False},
        )
    )
    assert emu.quirks["real_error_bodies"]
    client = client_for(emu, monkeypatch)
    cases = [
        (("Set-Mailbox", {"Identity": "ann", "AuditLogAgeLimit": "ninety days"}), ExchangeBadRequest, "Transformation"),
        (("Set-Mailbox", {"Identity": "ann", "BogusParameter": 1}), ExchangeBadRequest, "AmbiguousParameterSet"),
        (("Get-Mailbox", {"Identity": "nobody"}), ExchangeNotFound, "ManagementObjectNotFound"),
        (("Set-OrganizationConfig", {"AuditDisabled": False}), TenantDehydrated, "InvalidOperationInDehydrated"),
        (("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}), ExchangeProxyRequired, "CmdletProxy"),
    ]
    for (cmdlet, parameters), expected, exception_type in cases:
        with pytest.raises(expected) as caught:
            client.invoke(cmdlet, parameters)
        assert type(caught.value) is expected, cmdlet
        assert exception_type in (caught.value.exception_type or ""), cmdlet
        assert caught.value.detail and "Invalid Operation" not in caught.value.detail, cmdlet
    anchor = system_anchor(AUDIT_LOG_ANCHOR_GUID, TENANT_ID)
    with pytest.raises(TenantDehydrated):  # with the anchor the proxy is fine, and the tenant is still dehydrated
        client.invoke("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}, anchor=anchor)


def test_the_gzip_labelled_nul_403_is_a_permission_error(start_emulator, monkeypatch):
    emu = start_emulator(scenario(principal={"roles": ["Exchange.ManageAsApp"], "directory_roles": []}))
    with pytest.raises(ExchangePermissionError, match="no readable body"):
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")


def test_the_pagination_400_in_its_real_shape_still_restarts_once(start_emulator, monkeypatch):
    emu = start_emulator(many(2500))
    emu.add_fault(Fault("expire_cursor", cmdlet="Get-Mailbox", times=2))
    with pytest.raises(PaginationExpired):
        client_for(emu, monkeypatch).invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=FIELDS)


@pytest.mark.skipif(not FIXTURE.exists(), reason="../shared/fixtures is not beside the clone")
def test_the_captured_live_bodies_parse_to_their_text_and_type():
    bodies = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.startswith('{"error"')]
    transformation, ambiguous = bodies
    info = parse_error_body(json.dumps(transformation).encode())
    assert info.exception_type == "Microsoft.Exchange.AdminApi.CommandInvocation.ParameterTransformationException"
    assert info.text.startswith("Cannot process argument transformation on parameter 'QuarantineTypes'.")
    info = parse_error_body(json.dumps(ambiguous).encode())
    assert info.exception_type == "Microsoft.Exchange.AdminApi.CommandInvocation.AmbiguousParameterSetException"
    assert info.text.endswith("Invalid cmdlet parameters specified. BogusParameter")
    assert info.error_id is None


# ---- 9. anchors on every page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("anchor", [None, system_anchor(AUDIT_LOG_ANCHOR_GUID, TENANT_ID)])
def test_every_page_keeps_the_anchor_so_anchor_bound_cursors_work(start_emulator, monkeypatch, anchor):
    emu = start_emulator(many(3500))
    assert emu.quirks["anchor_bound_cursors"]
    client = client_for(emu, monkeypatch)
    rows = client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=FIELDS, anchor=anchor).rows
    assert len({row["ExternalDirectoryObjectId"] for row in rows}) == 3500
    calls = emu.invocations("Get-Mailbox")
    assert len(calls) == 4
    assert {c.headers["x-anchormailbox"] for c in calls} == {anchor or client.default_anchor}


# ---- 10. the China host ---------------------------------------------------------------------------------------


def test_the_china_cloud_keeps_the_module_host_and_exo_endpoint_overrides_it():
    china = CLOUDS["china"]
    assert china.exchange_host == "partner.outlook.cn"  # the reasoning: shared/config/clouds.py, README
    assert china.token_scope == "https://partner.outlook.cn/.default"
    base = {"EXO_TENANT_ID": TENANT_ID, "EXO_ORGANIZATION": "contoso.partner.onmschina.cn", "EXO_CLOUD": "china"}
    assert Settings.from_env(base).exchange_url == "https://partner.outlook.cn"
    assert Settings.from_env({**base, "EXO_ENDPOINT": "https://outlook.office365.cn"}).exchange_url == (
        "https://outlook.office365.cn"
    )
