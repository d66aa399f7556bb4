"""The emulated InvokeCommand endpoint on the wire: auth, permissions, envelopes, paging, filters, writes."""

from __future__ import annotations

import pytest

from emulator import Emulator

from .support import MORE_RESULTS, TENANT_ID, UAL_ANCHOR, Exo, raw_body, secret_token

CIS_OWNER_EXTRA = ["Create", "MailboxLogin", "Move"]


def tenant(**overrides):
    return {"tenant_id": TENANT_ID, **overrides}


# ---- authentication and permissions -------------------------------------------------------------------------


def test_tokens_for_the_wrong_audience_without_the_role_or_tampered_are_401(make_emulator):
    emu = make_emulator()
    graph = Exo(emu, secret_token(emu, "https://graph.microsoft.com/.default")).post("Get-OrganizationConfig")
    assert graph.status_code == 401 and graph.headers["WWW-Authenticate"].startswith("Bearer")
    assert graph.json()["error"]["code"] == "Unauthorized" and "audience" in graph.json()["error"]["message"]
    token = secret_token(emu)
    tampered = Exo(emu, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert tampered.post("Get-OrganizationConfig").status_code == 401
    assert Exo(emu, "not-a-jwt").post("Get-OrganizationConfig").status_code == 401
    no_role = make_emulator(tenant(principal={"roles": [], "directory_roles": ["Exchange Administrator"]}))
    answer = Exo(no_role).post("Get-OrganizationConfig")
    assert answer.status_code == 401 and "Exchange.ManageAsApp" in answer.json()["error"]["message"]
    foreign = Emulator(tenant(tenant_id="11111111-2222-3333-4444-555555555555")).start()
    try:  # a genuine token of another tenant: tid mismatch
        assert Exo(emu, secret_token(foreign)).post("Get-OrganizationConfig").status_code == 401
    finally:
        foreign.stop()


@pytest.mark.parametrize(
    ("roles", "allowed", "denied"),
    [
        ([], [], ["Get-OrganizationConfig", "Get-Mailbox"]),
        (["Global Reader"], ["Get-Mailbox", "Get-AdminAuditLogConfig"], ["Set-OrganizationConfig"]),
        (["Security Reader"], ["Get-OrganizationConfig", "Get-AdminAuditLogConfig"], ["Get-Mailbox"]),
        (["Exchange Administrator"], ["Get-Mailbox"], ["Get-Recipient", "Remove-Mailbox"]),
    ],
)
def test_directory_roles_decide_cmdlets_and_denial_is_a_nul_body(make_emulator, roles, allowed, denied):
    exo = Exo(make_emulator(tenant(principal={"directory_roles": roles})))
    for cmdlet in allowed:
        assert exo.post(cmdlet).status_code == 200, cmdlet
    for cmdlet in denied:
        answer = exo.post(cmdlet, {"AuditDisabled": False} if cmdlet.startswith("Set") else {})
        # The real 403 (quirk real_error_bodies, on by default): ~4 KiB of NULs labelled gzip, and not gzip.
        assert (answer.status_code, raw_body(answer)) == (403, b"\x00" * 4096), cmdlet
        assert answer.headers["Content-Encoding"] == "gzip"


def test_parameters_missing_or_null_is_400(make_emulator):
    exo = Exo(make_emulator())
    for body in (
        {"CmdletInput": {"CmdletName": "Get-OrganizationConfig"}},
        {"CmdletInput": {"CmdletName": "Get-OrganizationConfig", "Parameters": None}},
    ):
        answer = exo.post("", body=body)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "BadRequest"


# ---- success shape, $select, paging ----------------------------------------------------------------------


def test_success_envelope_sidecars_and_case_insensitive_select(make_emulator):
    emu = make_emulator(tenant(mailboxes=[{"UserPrincipalName": "ann@contoso.com"}]))
    answer = Exo(emu).post("Get-Mailbox", {"Identity": "ANN@contoso.com"}, select="guid,auditowner,Name")
    assert answer.headers["Content-Type"].startswith("application/json;odata.metadata=minimal")
    page = answer.json()
    assert page["@odata.context"].endswith("$metadata#Collection(Exchange.GenericHashTable)")
    assert page["adminapi.warnings@odata.type"] == "#Collection(String)" and page["@adminapi.warnings"] == []
    [row] = page["value"]
    assert list(row) == ["Guid@data.type", "Guid", "AuditOwner@odata.type", "AuditOwner", "Name"]
    assert row["AuditOwner@odata.type"] == "#Collection(String)" and row["Name"] == "ann"
    full = Exo(emu).ok("Get-Mailbox", {"Identity": row["Guid"]})["value"][0]
    assert {"ExternalDirectoryObjectId", "DefaultAuditSet", "AuditLogAgeLimit", "PersistedCapabilities"} <= set(full)


def test_paging_past_1000_with_next_links(make_emulator):
    emu = make_emulator(tenant(generate_mailboxes={"count": 2500}))
    exo = Exo(emu)
    pages = exo.pages(
        "Get-Mailbox",
        {"ResultSize": "Unlimited"},
        select="ExternalDirectoryObjectId",
        headers={"Prefer": "odata.maxpagesize=1000"},
    )
    assert [len(p["value"]) for p in pages] == [1000, 1000, 500]
    assert len({row["ExternalDirectoryObjectId"] for p in pages for row in p["value"]}) == 2500
    link = pages[0]["@odata.nextLink"]
    assert link.startswith(
        f"{emu.exchange_url}/adminapi/beta/{TENANT_ID}/InvokeCommand?$select=ExternalDirectoryObjectId&$skiptoken="
    )
    # As the real service: the "more results" warning on every page with a nextLink, none on the complete last one.
    assert [p["@adminapi.warnings"] for p in pages] == [[MORE_RESULTS], [MORE_RESULTS], []]
    again = exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, url=link)  # a retried nextLink: same page
    assert again["value"] == pages[1]["value"]
    small = exo.pages("Get-Mailbox", {"ResultSize": "Unlimited"}, headers={"Prefer": "odata.maxpagesize=999"})
    assert [len(p["value"]) for p in small] == [999, 999, 502]


def test_result_size_truncation_warns_without_next_link(make_emulator):
    exo = Exo(make_emulator(tenant(generate_mailboxes={"count": 1200})))
    [default] = exo.pages("Get-Mailbox", {})  # ResultSize defaults to 1000
    assert len(default["value"]) == 1000 and "@odata.nextLink" not in default
    assert default["@adminapi.warnings"] == [MORE_RESULTS]
    pages = exo.pages("Get-Mailbox", {"ResultSize": "250"}, headers={"Prefer": "odata.maxpagesize=100"})
    assert [len(p["value"]) for p in pages] == [100, 100, 50]
    # Every page warns (quirk paging_warning_every_page); only the last one, without a nextLink, means truncation.
    assert [(bool(p["@adminapi.warnings"]), "@odata.nextLink" in p) for p in pages] == [
        (True, True),
        (True, True),
        (True, False),
    ]
    assert len(exo.pages("Get-Mailbox", {"ResultSize": "1200"})[-1]["value"]) == 200


def test_expired_or_unknown_cursor(make_emulator):
    emu = make_emulator(tenant(generate_mailboxes={"count": 30}))
    exo = Exo(emu)
    headers = {"Prefer": "odata.maxpagesize=10"}
    link = exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, headers=headers)["@odata.nextLink"]
    emu.cursor_ttl = 0
    expired = exo.post("Get-Mailbox", {"ResultSize": "Unlimited"}, url=link, headers=headers)
    assert expired.status_code == 400
    assert "Expired or Invalid pagination request. Default Expiry time is 00:30:00" in exo.error_text(expired)
    unknown = exo.post("Get-Mailbox", {}, url=exo.url() + "?$skiptoken=bm9wZQ")
    assert unknown.status_code == 400 and "Expired or Invalid pagination" in exo.error_text(unknown)


# ---- Get-Mailbox semantics -------------------------------------------------------------------------------

MIXED = tenant(
    mailboxes=[
        {"Name": "ann", "AuditEnabled": True},
        {"Name": "bob", "PersistedCapabilities": ["M365Auditing", "BPOS_S_EquivioAnalytics"]},
        {"Name": "cid"},
        {"Name": "helpdesk", "RecipientTypeDetails": "SharedMailbox"},
        {"Name": "room", "RecipientTypeDetails": "RoomMailbox"},
    ]
)


def names(page):
    return [row["Name"] for row in page["value"]]


def test_filter_uses_the_stored_audit_enabled_and_output_the_effective_one(make_emulator):
    exo = Exo(make_emulator(MIXED))
    everyone = exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, select="Name,AuditEnabled")["value"]
    assert {r["Name"]: r["AuditEnabled"] for r in everyone} == {
        "ann": True,
        "bob": True,
        "cid": True,
        "helpdesk": True,
        "room": False,
    }
    query = (
        "AuditEnabled -ne 'True' -and RecipientTypeDetails -eq 'UserMailbox' -and "
        "PersistedCapabilities -ne 'M365Auditing'"
    )  # quoted: the $true form is refused (quirk reject_dollar_booleans; test_quirks.py)
    assert names(exo.ok("Get-Mailbox", {"Filter": query}, select="Name")) == ["cid"]
    assert names(
        exo.ok("Get-Mailbox", {"Filter": "(Name -like 'h*') -or -not (Name -ne \"room\")"}, select="Name")
    ) == ["helpdesk", "room"]
    assert names(exo.ok("Get-Mailbox", {"RecipientTypeDetails": ["SharedMailbox", "RoomMailbox"]}, select="Name")) == [
        "helpdesk",
        "room",
    ]
    assert names(exo.ok("Get-Mailbox", {"Filter": "PersistedCapabilities -eq $null"}, select="Name")) == [
        "ann",
        "cid",
        "helpdesk",
        "room",
    ]


@pytest.mark.parametrize(
    "query", ["AuditEnabled -eq", "(Name -eq 'a'", "Name -gt 'a'", "Nope -eq 1", "AuditLogAgeLimit -eq '90.00:00:00'"]
)
def test_bad_filters_are_parameter_binding_errors(make_emulator, query):
    exo = Exo(make_emulator(MIXED))
    answer = exo.post("Get-Mailbox", {"Filter": query})
    assert answer.status_code == 400
    assert answer.headers["X-ExceptionType"] == "ParameterBindingException"
    assert "Invalid filter syntax" in exo.error_text(answer)


def test_unknown_identity_is_a_404_envelope(make_emulator):
    exo = Exo(make_emulator(MIXED))
    answer = exo.post("Get-Mailbox", {"Identity": "nobody@contoso.com"})
    assert answer.status_code == 404 and answer.headers["X-ExceptionType"] == "ManagementObjectNotFoundException"
    error = answer.json()["error"]
    assert (error["code"], error["message"]) == ("NotFound", "Error executing cmdlet")
    error_id, exception_type, text = error["details"][0]["message"].split("|")
    assert exception_type == "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    assert error_id.startswith("Ex") and "nobody@contoso.com" in text
    internal = error["innererror"]["internalexception"]
    assert (internal["message"], internal["type"]) == (text, exception_type)


# ---- Set-Mailbox -----------------------------------------------------------------------------------------


def test_hashtable_add_freezes_that_logon_type_and_default_audit_set_unfreezes(make_emulator):
    emu = make_emulator(MIXED)
    exo = Exo(emu)
    add = {"@odata.type": "#Exchange.GenericHashTable", "Add": CIS_OWNER_EXTRA}
    assert exo.ok("Set-Mailbox", {"Identity": "cid", "AuditOwner": add})["@adminapi.warnings"] == []
    cid = emu.tenant.mailbox("cid")
    assert set(CIS_OWNER_EXTRA) <= set(cid["AuditOwner"]) and "MailItemsAccessed" in cid["AuditOwner"]
    assert cid["DefaultAuditSet"] == ["Admin", "Delegate"]
    again = exo.ok("Set-Mailbox", {"Identity": "cid", "AuditOwner": add})
    assert again["@adminapi.warnings"] == [
        "The command completed successfully but no settings of 'cid' have been modified."
    ]
    remove = {"@odata.type": "#Exchange.GenericHashTable", "Remove": ["MailboxLogin"]}
    exo.ok("Set-Mailbox", {"Identity": "cid", "AuditOwner": remove})
    assert "MailboxLogin" not in emu.tenant.mailbox("cid")["AuditOwner"]
    exo.ok("Set-Mailbox", {"Identity": "cid", "AuditAdmin": ["Copy", "FolderBind"]})  # a list replaces
    assert emu.tenant.mailbox("cid")["AuditAdmin"] == ["Copy", "FolderBind"]
    assert emu.tenant.mailbox("cid")["DefaultAuditSet"] == ["Delegate"]
    exo.ok("Set-Mailbox", {"Identity": "cid", "DefaultAuditSet": ["Admin", "Delegate", "Owner"]})
    cid = emu.tenant.mailbox("cid")
    assert cid["DefaultAuditSet"] == ["Admin", "Delegate", "Owner"]
    assert cid["AuditOwner"] == emu.tenant.default_actions["Owner"] and "Copy" not in cid["AuditAdmin"]
    assert [w.cmdlet for w in emu.writes()] == ["Set-Mailbox"] * 5


def test_set_mailbox_retention_and_enablement(make_emulator):
    emu = make_emulator(MIXED)
    exo = Exo(emu)
    exo.ok(
        "Set-Mailbox",
        {
            "Identity": emu.tenant.mailbox("cid")["ExternalDirectoryObjectId"],
            "AuditEnabled": True,
            "AuditLogAgeLimit": "180.00:00:00",
        },
    )
    assert (emu.tenant.mailbox("cid")["AuditEnabled"], emu.tenant.mailbox("cid")["AuditLogAgeLimit"]) == (
        True,
        "180.00:00:00",
    )
    exo.ok("Set-Mailbox", {"Identity": "cid", "AuditLogAgeLimit": "12:00:00"})
    assert emu.tenant.mailbox("cid")["AuditLogAgeLimit"] == "12:00:00"


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"AuditDelegate": {"@odata.type": "#Exchange.GenericHashTable", "Add": ["Send"]}}, "Send"),
        ({"AuditOwner": ["Update", "Teleport"]}, "Specify one of the following enumerator names"),
        ({"AuditOwner": {"Add": ["Create"]}}, "#Exchange.GenericHashTable"),
        ({"AuditLogAgeLimit": "ninety days"}, "EnhancedTimeSpan"),
        ({"AuditLogAgeLimit": "1.25:00:00"}, "EnhancedTimeSpan"),
        ({"Colour": "blue"}, "Invalid cmdlet parameters specified. Colour"),  # the real AmbiguousParameterSet text
        ({"AuditEnabled": "maybe"}, "System.Boolean"),
    ],
)
def test_set_mailbox_rejects_bad_input_and_changes_nothing(make_emulator, parameters, expected):
    emu = make_emulator(MIXED)
    before = dict(emu.tenant.mailbox("cid"))
    exo = Exo(emu)
    answer = exo.post("Set-Mailbox", {"Identity": "cid", **parameters})
    assert answer.status_code == 400 and expected in exo.error_text(answer)
    assert emu.tenant.mailbox("cid") == before


def test_licence_gate_applies_to_newly_added_premium_actions(make_emulator):
    emu = make_emulator(
        tenant(
            licence_gate=True,
            mailboxes=[
                {"Name": "e3", "AuditOwner": ["Update"]},
                {"Name": "e5", "AuditOwner": ["Update"], "PersistedCapabilities": ["M365Auditing"]},
            ],
        )
    )
    exo = Exo(emu)
    add = {"@odata.type": "#Exchange.GenericHashTable", "Add": ["MailItemsAccessed"]}
    refused = exo.post("Set-Mailbox", {"Identity": "e3", "AuditOwner": add})
    assert refused.status_code == 400
    assert "Auditing of MailItemsAccessed event is only available for users with appropriate license" in (
        exo.error_text(refused)
    )
    assert exo.post("Set-Mailbox", {"Identity": "e5", "AuditOwner": add}).status_code == 200


# ---- organisation, UAL, bypass ---------------------------------------------------------------------------


def test_dehydrated_tenant_needs_customization_first(make_emulator):
    emu = make_emulator(
        tenant(organization_config={"AuditDisabled": True, "IsDehydrated": True}, customisation_delay_seconds=0)
    )
    exo = Exo(emu)
    refused = exo.post("Set-OrganizationConfig", {"AuditDisabled": False})
    assert refused.status_code == 400
    assert refused.headers["X-ExceptionType"] == "InvalidOperationInDehydratedContextException"
    assert "first run Enable-OrganizationCustomization" in exo.error_text(refused)
    assert exo.ok("Enable-OrganizationCustomization")["value"] == []
    assert exo.ok("Set-OrganizationConfig", {"AuditDisabled": False})["@adminapi.warnings"] == []
    assert emu.tenant.organization_config == {
        "Name": "contoso.onmicrosoft.com",
        "AuditDisabled": False,
        "IsDehydrated": False,
    }
    unchanged = exo.ok("Set-OrganizationConfig", {"AuditDisabled": False})["@adminapi.warnings"]
    assert unchanged == [
        "The command completed successfully but no settings of 'contoso.onmicrosoft.com' have been modified."
    ]
    again = exo.post("Enable-OrganizationCustomization")
    assert again.status_code == 400 and "already enabled for customization" in exo.error_text(again)


def test_customisation_takes_time_writes_stay_refused_while_isdehydrated_already_reads_false(make_emulator):
    emu = make_emulator(
        tenant(
            organization_config={"AuditDisabled": True, "IsDehydrated": True},
            admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False},
            customisation_delay_seconds=600,
        )
    )
    exo = Exo(emu)
    exo.ok("Enable-OrganizationCustomization")
    assert exo.ok("Get-OrganizationConfig")["value"][0]["IsDehydrated"] is False  # flips at once
    for cmdlet, parameters in [
        ("Set-OrganizationConfig", {"AuditDisabled": False}),
        ("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}),
    ]:
        refused = exo.post(cmdlet, parameters, headers={"X-AnchorMailbox": UAL_ANCHOR})
        assert refused.headers["X-ExceptionType"] == "InvalidOperationInDehydratedContextException", cmdlet
    again = exo.post("Enable-OrganizationCustomization")
    assert "already enabled for customization" in exo.error_text(again)
    with emu.lock:
        emu.tenant.customisation_pending_until = 0.0  # the propagation has finished
    exo.ok("Set-OrganizationConfig", {"AuditDisabled": False})
    assert emu.tenant.organization_config["AuditDisabled"] is False


def test_customisation_delay_defaults_to_the_real_services_hour_and_is_validated():
    from emulator.scenario import load_scenario

    assert load_scenario({})["customisation_delay_seconds"] == 3600
    assert load_scenario({"customisation_delay_seconds": 2})["customisation_delay_seconds"] == 2
    with pytest.raises(ValueError, match="customisation_delay_seconds"):
        load_scenario({"customisation_delay_seconds": "soon"})


def test_enabling_the_unified_audit_log_needs_the_arbitration_anchor(make_emulator):
    emu = make_emulator(tenant(admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False}))
    exo = Exo(emu)
    enable = {"UnifiedAuditLogIngestionEnabled": True}
    plain = exo.post(
        "Set-AdminAuditLogConfig",
        enable,
        headers={"X-AnchorMailbox": f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{TENANT_ID}"},
    )
    assert plain.status_code == 400 and plain.headers["X-ExceptionType"] == "CmdletProxyNotAvailableException"
    assert "Cmdlet needs proxy" in exo.error_text(plain)
    exo.ok("Set-AdminAuditLogConfig", enable, headers={"X-AnchorMailbox": UAL_ANCHOR})
    assert emu.tenant.admin_audit_log_config["UnifiedAuditLogIngestionEnabled"] is True
    exo.ok("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": False})  # disabling needs no anchor
    assert emu.tenant.admin_audit_log_config["UnifiedAuditLogIngestionEnabled"] is False


def test_bypass_associations_page_and_change_by_guid_or_name(make_emulator):
    emu = make_emulator(
        tenant(
            bypass_associations=[{"Name": "svc-backup", "AuditBypassEnabled": True}],
            generate_bypass_associations={"count": 1500, "enabled_every": 500},
        )
    )
    exo = Exo(emu)
    pages = exo.pages(
        "Get-MailboxAuditBypassAssociation", {"ResultSize": "Unlimited"}, select="Guid,Name,AuditBypassEnabled"
    )
    rows = [row for page in pages for row in page["value"]]
    assert len(rows) == 1501 and sum(row["AuditBypassEnabled"] for row in rows) == 4
    guid = rows[0]["Guid"]
    exo.ok("Set-MailboxAuditBypassAssociation", {"Identity": guid, "AuditBypassEnabled": False})
    exo.ok("Set-MailboxAuditBypassAssociation", {"Identity": "bypass-000500", "AuditBypassEnabled": False})
    assert sum(a["AuditBypassEnabled"] for a in emu.tenant.bypass_associations) == 2
    missing = exo.post("Set-MailboxAuditBypassAssociation", {"Identity": "ghost", "AuditBypassEnabled": False})
    assert missing.status_code == 404


def test_recorded_requests_describe_each_call(make_emulator):
    emu = make_emulator(MIXED)
    exo = Exo(emu)
    exo.ok("Get-Mailbox", {"Identity": "ann"}, select="Name", headers={"X-AnchorMailbox": "APP:x"})
    exo.post("Set-Mailbox", {"Identity": "ann", "AuditEnabled": "maybe"})
    get, attempted = emu.invocations()
    assert (get.method, get.listener, get.cmdlet, get.status) == ("POST", "exchange", "Get-Mailbox", 200)
    assert get.query == {"$select": "Name"} and get.headers["x-anchormailbox"] == "APP:x"
    assert get.host == emu.exchange_url.removeprefix("https://")
    assert get.body == {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"Identity": "ann"}}}
    assert emu.writes() == [attempted] and attempted.status == 400 and attempted.at >= get.at
    assert emu.invocations("set-mailbox") == [attempted]
    emu.reset_log()
    assert emu.requests == [] and emu.invocations() == []


def test_accepted_domains_default_to_the_organizations_and_the_mailboxes_and_can_be_given(make_emulator):
    emu = make_emulator({"mailboxes": [{"Name": "ann", "PrimarySmtpAddress": "ann@Contoso.com"}]})
    rows = Exo(emu).ok("Get-AcceptedDomain")["value"]
    assert [(row["DomainName"], row["Default"]) for row in rows] == [
        ("contoso.onmicrosoft.com", True),
        ("contoso.com", False),
    ]
    assert {row["DomainType"] for row in rows} == {"Authoritative"}
    given = make_emulator({"accepted_domains": ["fabrikam.com"]})
    assert [row["DomainName"] for row in Exo(given).ok("Get-AcceptedDomain")["value"]] == ["fabrikam.com"]
    assert Exo(given).post("Get-AcceptedDomain", {"Identity": "contoso.com"}).status_code == 404
    with pytest.raises(ValueError, match="accepted_domains"):
        Emulator({"accepted_domains": "contoso.com"})
