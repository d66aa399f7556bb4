"""The real service's quirks the emulator copies (emulator-spec.md "Quirks"), each on by default, each switchable,
and the quirk faults (ok_no_value, ok_null_value, ok_error, adminapi_errors, redirect)."""

from __future__ import annotations

import pytest

from emulator import Emulator, Fault
from emulator.scenario import QUIRK_DEFAULTS, load_scenario

from .support import MORE_RESULTS, TENANT_ID, UAL_ANCHOR, Exo, raw_body

SMALL_PAGES = {"Prefer": "odata.maxpagesize=10"}
OTHER_ANCHOR = f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{TENANT_ID}"
DOLLAR_FILTER = "AuditEnabled -ne $true -and RecipientTypeDetails -eq 'UserMailbox'"
QUOTED_FILTER = "AuditEnabled -ne 'True' -and RecipientTypeDetails -eq 'UserMailbox'"


def tenant(quirks=None, **extra):
    return {"tenant_id": TENANT_ID, **({"quirks": quirks} if quirks is not None else {}), **extra}


def mailboxes(count, quirks=None):
    return tenant(quirks, generate_mailboxes={"count": count})


def test_every_quirk_is_on_by_default_and_each_can_be_switched_off():
    assert load_scenario({})["quirks"] == dict.fromkeys(
        ("paging_warning_every_page", "reject_dollar_booleans", "anchor_bound_cursors", "real_error_bodies"), True
    )
    assert load_scenario({"quirks": {"real_error_bodies": False}})["quirks"] == {
        **QUIRK_DEFAULTS,
        "real_error_bodies": False,
    }
    with pytest.raises(ValueError, match="unknown quirks: kind_errors"):
        load_scenario({"quirks": {"kind_errors": True}})
    with pytest.raises(ValueError, match="true or false"):
        load_scenario({"quirks": {"anchor_bound_cursors": "yes"}})
    assert Emulator({"quirks": {"anchor_bound_cursors": False}}).quirks["anchor_bound_cursors"] is False


# ---- paging_warning_every_page ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("on", "expected"), [(True, [[MORE_RESULTS], [MORE_RESULTS], []]), (False, [[], [], []])])
def test_the_more_results_warning_rides_on_every_page_with_a_next_link(make_emulator, on, expected):
    exo = Exo(make_emulator(mailboxes(25, {"paging_warning_every_page": on})))
    pages = exo.pages("Get-Mailbox", {"ResultSize": "Unlimited"}, headers=SMALL_PAGES)
    assert [p["@adminapi.warnings"] for p in pages] == expected
    assert ["@odata.nextLink" in p for p in pages] == [True, True, False]


# ---- reject_dollar_booleans ------------------------------------------------------------------------------------


def test_a_filter_with_dollar_booleans_is_refused_like_a_bad_parameter(make_emulator):
    emu = make_emulator(tenant(mailboxes=[{"Name": "ann"}]))
    exo = Exo(emu)
    refused = exo.post("Get-Mailbox", {"Filter": DOLLAR_FILTER})
    assert refused.status_code == 400
    assert refused.headers["X-ExceptionType"] == "ParameterTransformationException"
    assert "$true" in exo.error_text(refused) and "'True'" in exo.error_text(refused)
    for variant in ("AuditEnabled -eq $False", "(AuditEnabled -eq $TRUE)"):
        assert exo.post("Get-Mailbox", {"Filter": variant}).status_code == 400, variant
    assert [r["Name"] for r in exo.ok("Get-Mailbox", {"Filter": QUOTED_FILTER})["value"]] == ["ann"]
    assert exo.ok("Get-Mailbox", {"Filter": "PersistedCapabilities -eq $null"})["value"]  # $null is not a boolean


def test_dollar_booleans_are_accepted_with_the_quirk_off(make_emulator):
    exo = Exo(make_emulator(tenant({"reject_dollar_booleans": False}, mailboxes=[{"Name": "ann"}])))
    assert [r["Name"] for r in exo.ok("Get-Mailbox", {"Filter": DOLLAR_FILTER})["value"]] == ["ann"]


# ---- anchor_bound_cursors --------------------------------------------------------------------------------------


def test_a_cursor_is_valid_only_under_the_anchor_it_was_issued_with(make_emulator):
    exo = Exo(make_emulator(mailboxes(25)))
    first = exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, headers={**SMALL_PAGES, "X-AnchorMailbox": UAL_ANCHOR})
    link = first["@odata.nextLink"]
    for headers in ({**SMALL_PAGES, "X-AnchorMailbox": OTHER_ANCHOR}, SMALL_PAGES):  # another anchor, or none
        refused = exo.post("Get-Mailbox", {"ResultSize": "Unlimited"}, url=link, headers=headers)
        assert refused.status_code == 400
        assert "Expired or Invalid pagination request. Default Expiry time is 00:30:00" in exo.error_text(refused)
    same = exo.ok(
        "Get-Mailbox", {"ResultSize": "Unlimited"}, url=link, headers={**SMALL_PAGES, "X-AnchorMailbox": UAL_ANCHOR}
    )
    assert len(same["value"]) == 10  # the cursor survived the refused attempts


def test_cursors_ignore_the_anchor_with_the_quirk_off(make_emulator):
    exo = Exo(make_emulator(mailboxes(25, {"anchor_bound_cursors": False})))
    link = exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, headers=SMALL_PAGES)["@odata.nextLink"]
    moved = exo.ok(
        "Get-Mailbox", {"ResultSize": "Unlimited"}, url=link, headers={**SMALL_PAGES, "X-AnchorMailbox": UAL_ANCHOR}
    )
    assert len(moved["value"]) == 10


# ---- real_error_bodies -----------------------------------------------------------------------------------------

TRANSFORMATION = "Microsoft.Exchange.AdminApi.CommandInvocation.ParameterTransformationException"
AMBIGUOUS_SET = "Microsoft.Exchange.AdminApi.CommandInvocation.AmbiguousParameterSetException"


def test_a_parameter_transformation_error_has_the_captured_shape(make_emulator):
    """graph2otel 2026-07-23: "Invalid Operation", no details, the text only under internalexception."""
    exo = Exo(make_emulator(tenant(mailboxes=[{"Name": "ann"}])))
    answer = exo.post("Set-Mailbox", {"Identity": "ann", "AuditLogAgeLimit": "ninety days"})
    error = answer.json()["error"]
    assert (answer.status_code, error["code"], error["message"]) == (400, "BadRequest", "Invalid Operation")
    assert "details" not in error
    assert error["innererror"]["message"] == "Invalid Operation"
    assert error["innererror"]["type"] == "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"
    internal = error["innererror"]["internalexception"]
    assert internal["type"] == TRANSFORMATION
    assert internal["message"].startswith("Cannot process argument transformation on parameter 'AuditLogAgeLimit'.")
    assert error["@adminapi.warnings"] == []  # the warnings sit inside `error`


def test_an_unknown_parameter_has_the_captured_details_shape_with_an_empty_error_id(make_emulator):
    exo = Exo(make_emulator(tenant(mailboxes=[{"Name": "ann"}])))
    error = exo.post("Set-Mailbox", {"Identity": "ann", "BogusParameter": 1}).json()["error"]
    assert error["message"] == "Invalid Operation"
    [detail] = error["details"]
    assert detail["code"] == "Client"
    assert detail["message"] == (
        f"|{AMBIGUOUS_SET}|Parameter set cannot be resolved using the specified named parameters. "
        "Invalid cmdlet parameters specified. BogusParameter"
    )
    assert error["innererror"]["internalexception"]["type"] == AMBIGUOUS_SET


def test_cmdlet_needs_proxy_carries_its_text_in_error_message(make_emulator):
    exo = Exo(make_emulator(tenant(admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False})))
    error = exo.post("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}).json()["error"]
    assert error["message"].startswith("Cmdlet needs proxy. Current Server FQDN : ")
    assert error["details"][0]["message"].startswith(
        "|Microsoft.Exchange.Configuration.Tasks.CmdletProxyNotAvailableException|Cmdlet needs proxy."
    )


def test_the_dehydrated_error_names_the_configuration_tasks_type(make_emulator):
    exo = Exo(make_emulator(tenant(organization_config={"IsDehydrated": True})))
    answer = exo.post("Set-OrganizationConfig", {"AuditDisabled": False})
    assert answer.headers["X-ExceptionType"] == "InvalidOperationInDehydratedContextException"
    assert answer.json()["error"]["innererror"]["internalexception"]["type"] == (
        "Microsoft.Exchange.Configuration.Tasks.InvalidOperationInDehydratedContextException"
    )


def test_the_permission_403_is_4_kib_of_nul_bytes_labelled_gzip(make_emulator):
    exo = Exo(make_emulator(tenant(principal={"directory_roles": []})))
    answer = exo.post("Get-OrganizationConfig")
    assert (answer.status_code, answer.headers["Content-Encoding"]) == (403, "gzip")
    assert raw_body(answer) == b"\x00" * 4096


def test_the_kinder_shapes_stay_available_with_the_quirk_off(make_emulator):
    kind = {"real_error_bodies": False}
    exo = Exo(
        make_emulator(tenant(kind, mailboxes=[{"Name": "ann"}], principal={"directory_roles": ["Global Reader"]}))
    )
    answer = exo.post("Get-Mailbox", {"Identity": "ann", "Colour": "blue"})
    error = answer.json()["error"]
    assert error["message"] == "Error executing cmdlet"
    assert error["details"][0]["code"] == "Context"
    error_id, exception_type, text = error["details"][0]["message"].split("|")
    assert error_id.startswith("Ex") and exception_type == "System.Management.Automation.ParameterBindingException"
    assert text == "A parameter cannot be found that matches parameter name 'Colour'."
    denied = exo.post("Set-OrganizationConfig", {"AuditDisabled": False})
    assert (denied.status_code, denied.content, "Content-Encoding" in denied.headers) == (403, b"\x00" * 16, False)


# ---- quirk faults ----------------------------------------------------------------------------------------------


def test_ok_no_value_and_ok_null_value_reshape_a_normal_200(make_emulator):
    emu = make_emulator(tenant(mailboxes=[{"Name": "ann"}]))
    exo = Exo(emu)
    emu.add_fault(Fault("ok_no_value", cmdlet="Set-Mailbox"))
    absent = exo.ok("Set-Mailbox", {"Identity": "ann", "AuditLogAgeLimit": "200.00:00:00"})
    assert "value" not in absent and absent["@adminapi.warnings"] == []
    assert emu.tenant.mailbox("ann")["AuditLogAgeLimit"] == "200.00:00:00"  # the write happened
    emu.add_fault(Fault("ok_null_value", cmdlet="Get-OrganizationConfig"))
    assert exo.ok("Get-OrganizationConfig")["value"] is None
    assert exo.ok("Get-OrganizationConfig")["value"]  # once only


@pytest.mark.parametrize("key", ["error", "@odata.error"])
def test_ok_error_is_a_200_carrying_an_error_object(make_emulator, key):
    emu = make_emulator(tenant(organization_config={"AuditDisabled": True}))
    emu.add_fault(
        Fault(
            "ok_error",
            cmdlet="Set-OrganizationConfig",
            key=key,
            exception_type="Microsoft.Exchange.Configuration.Tasks.InvalidOperationInDehydratedContextException",
            message="first run Enable-OrganizationCustomization",
        )
    )
    answer = Exo(emu).post("Set-OrganizationConfig", {"AuditDisabled": False})
    assert answer.status_code == 200
    body = answer.json()
    assert "value" not in body and body[key]["code"] == "BadRequest"
    assert body[key]["innererror"]["internalexception"]["type"].endswith("InvalidOperationInDehydratedContextException")
    assert emu.tenant.organization_config["AuditDisabled"] is True  # nothing was written


def test_adminapi_errors_ride_next_to_the_rows(make_emulator):
    emu = make_emulator(mailboxes(25))
    emu.add_fault(Fault("adminapi_errors", cmdlet="Get-Mailbox", page=2, errors=["The mailbox x is unavailable."]))
    pages = Exo(emu).pages("Get-Mailbox", {"ResultSize": "Unlimited"}, headers=SMALL_PAGES)
    assert [len(p["value"]) for p in pages] == [10, 10, 5]
    assert [p.get("@adminapi.errors") for p in pages] == [None, ["The mailbox x is unavailable."], None]


def test_redirect_answers_302_to_a_regional_host_on_port_446(make_emulator):
    emu = make_emulator()
    emu.add_fault(Fault("redirect", cmdlet="Get-OrganizationConfig"))
    exo = Exo(emu)
    answer = exo.post("Get-OrganizationConfig", select="Name", headers={"X-CmdletName": "x"})
    assert answer.status_code == 302
    assert answer.headers["Location"] == (
        f"https://xyz01b.outlook.office365.com:446/adminapi/beta/{TENANT_ID}/InvokeCommand?$select=Name"
    )
    emu.add_fault(Fault("redirect", status=307, location="https://elsewhere.example/x"))
    moved = exo.post("Get-OrganizationConfig")
    assert (moved.status_code, moved.headers["Location"]) == (307, "https://elsewhere.example/x")
    assert exo.post("Get-OrganizationConfig").status_code == 200
