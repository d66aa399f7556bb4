"""`python -m shared diagnose` against the emulated tenant: every assumption named, held or failed, never a token."""

from __future__ import annotations

from typing import Any

from emulator.faults import Fault
from tests.integration.helpers import CUSTOMISED_MAILBOX, bearer_tokens
from tests.support.cli import cli_json, run_cli
from tests.support.tenant import scenario

# Enough objects for three pages of two.
PAGED = {"generate_mailboxes": {"count": 7}, "generate_bypass_associations": {"count": 5, "enabled_every": 0}}


def diagnose(emu: Any, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = run_cli(emu, "diagnose", "--json", *args, env=env)
    document = cli_json(result)
    assert document["exit_code"] == result.returncode
    return result.returncode, document


def verdicts(document: dict[str, Any]) -> dict[str, str]:
    return {item["id"]: item["verdict"] for item in document["assumptions"]}


def assumption(document: dict[str, Any], ident: str) -> dict[str, Any]:
    [found] = [item for item in document["assumptions"] if item["id"] == ident]
    return found


def test_a_healthy_tenant_holds_every_assumption_and_pages_with_the_anchor_kept(start_emulator):
    emu = start_emulator(scenario(**PAGED))
    code, document = diagnose(emu)
    assert code == 0, document["failed"]
    found = verdicts(document)
    for ident in (
        "token.audience",
        "token.tenant",
        "token.app-only",
        "read.Get-OrganizationConfig",
        "read.Get-AdminAuditLogConfig",
        "paging.Get-Mailbox",
        "paging.Get-MailboxAuditBypassAssociation",
        "answers.empty",
        "filter.booleans",
        "redirects",
    ):
        assert found[ident] == "held", ident
    assert found["write.shapes"] == "skipped"  # read-only unless asked
    paging = assumption(document, "paging.Get-Mailbox")
    assert paging["details"]["page_sizes"] == [2, 2, 2]
    mailbox_requests = [
        r
        for r in emu.invocations("Get-Mailbox")
        if isinstance(r.body["CmdletInput"]["Parameters"].get("RecipientTypeDetails"), list)
    ]
    assert len(mailbox_requests) == 3  # three pages, the second and third through the nextLink
    assert any("skiptoken" in str(r.query).lower() for r in mailbox_requests)
    anchors = {r.headers["x-anchormailbox"] for r in emu.invocations("Get-Mailbox")}
    assert len(anchors) == 1
    assert not [r for r in emu.invocations() if r.cmdlet and r.cmdlet.startswith(("Set-", "Enable-"))]


def test_the_report_shows_claims_but_never_the_token(start_emulator):
    emu = start_emulator(scenario(**PAGED))
    result = run_cli(emu, "diagnose", "--json")
    text = run_cli(emu, "diagnose")
    tokens = bearer_tokens(emu)
    assert tokens
    for output in (result.stdout, result.stderr, text.stdout, text.stderr):
        assert not any(token in output for token in tokens)
        assert "eyJ" not in output  # no JWT at all, not even part of one
    claims = cli_json(result)["token_claims"]
    assert claims["roles"] == ["Exchange.ManageAsApp"]
    assert set(claims) <= {"aud", "iss", "tid", "appid", "azp", "idtyp", "roles", "scp", "oid", "ver", "exp"}
    assert "held" in text.stdout.lower() and "exit code 0" in text.stdout


def test_a_missing_app_role_is_named_with_what_to_do(start_emulator):
    emu = start_emulator(scenario(principal={"roles": []}))
    code, document = diagnose(emu)
    assert code == 1
    role = assumption(document, "token.app-only")
    assert role["verdict"] == "failed"
    assert "grant-permissions" in role["advice"]
    assert "token.app-only" in document["failed"]


def test_a_cmdlet_that_is_refused_is_a_failed_read_and_the_rest_still_runs(start_emulator):
    emu = start_emulator(scenario(**PAGED))
    emu.add_fault(Fault("status", cmdlet="Get-AdminAuditLogConfig", times=-1, status=403, body="nul"))
    code, document = diagnose(emu)
    assert code == 1
    read = assumption(document, "read.Get-AdminAuditLogConfig")
    assert read["verdict"] == "failed" and "403" in read["observed"]
    assert verdicts(document)["paging.Get-Mailbox"] == "held"  # one failure does not hide the others


def test_a_cursor_that_keeps_expiring_fails_the_paging_assumption(start_emulator):
    emu = start_emulator(scenario(**PAGED))
    emu.add_fault(Fault("expire_cursor", cmdlet="Get-Mailbox", times=-1))
    code, document = diagnose(emu)
    assert code == 1
    paging = assumption(document, "paging.Get-Mailbox")
    assert paging["verdict"] == "failed"
    assert "pagination" in paging["observed"].lower() or "expired" in paging["observed"].lower()


def test_no_token_means_diagnose_could_not_run(start_emulator):
    emu = start_emulator(scenario())
    emu.add_fault(Fault("status", listener="token", times=-1, status=400, body="envelope"))
    code, document = diagnose(emu)
    assert code == 2
    assert document["error"].startswith("no token could be obtained")
    assert document["assumptions"] == []


def test_bad_settings_are_exit_2_before_anything_is_sent(start_emulator):
    emu = start_emulator(scenario())
    result = run_cli(emu, "diagnose", "--json", env={"EXO_TENANT_ID": "not-a-guid"})
    assert result.returncode == 2
    assert "EXO_TENANT_ID" in result.stderr
    assert emu.invocations() == []


# -- the write test ------------------------------------------------------------------------------------------------

CUSTOMISED = CUSTOMISED_MAILBOX


def test_the_write_test_adds_an_action_already_there_and_changes_nothing(start_emulator):
    emu = start_emulator(scenario(mailboxes=[CUSTOMISED]))
    before = {k: v for k, v in emu.tenant.mailboxes[0].items() if k.startswith("Audit") or k == "DefaultAuditSet"}
    code, document = diagnose(emu, "--write-test-mailbox", "probe@contoso.com")
    assert code == 0, document["failed"]
    write = assumption(document, "write.shapes")
    assert write["verdict"] == "held" and "AuditOwner HardDelete" in write["observed"]
    [request] = emu.invocations("Set-Mailbox")
    sent = request.body["CmdletInput"]["Parameters"]
    assert sent["AuditOwner"] == {"@odata.type": "#Exchange.GenericHashTable", "Add": ["HardDelete"]}
    assert sent["AuditLogAgeLimit"] == "180.00:00:00"
    after = {k: v for k, v in emu.tenant.mailboxes[0].items() if k.startswith("Audit") or k == "DefaultAuditSet"}
    assert after == before


def test_the_write_test_never_freezes_a_managed_logon_type(start_emulator):
    managed = {**CUSTOMISED, "DefaultAuditSet": ["Admin", "Delegate", "Owner"]}
    emu = start_emulator(scenario(mailboxes=[managed]))
    code, document = diagnose(emu, "--write-test-mailbox", "probe@contoso.com")
    assert code == 0, document["failed"]
    [request] = emu.invocations("Set-Mailbox")
    sent = request.body["CmdletInput"]["Parameters"]
    assert not any(name.startswith("Audit") and name != "AuditLogAgeLimit" for name in sent)
    assert "not tried" in assumption(document, "write.shapes")["observed"]
    assert emu.tenant.mailboxes[0]["DefaultAuditSet"] == ["Admin", "Delegate", "Owner"]


def test_a_refused_write_shape_is_a_failed_assumption(start_emulator):
    emu = start_emulator(scenario(mailboxes=[CUSTOMISED]))
    emu.add_fault(Fault("status", cmdlet="Set-Mailbox", times=-1, status=400, body="envelope"))
    code, document = diagnose(emu, "--write-test-mailbox", "probe@contoso.com")
    write = assumption(document, "write.shapes")
    assert (code, write["verdict"]) == (1, "failed")
    assert "400" in write["observed"]


def test_an_unknown_test_mailbox_fails_the_write_test_without_writing(start_emulator):
    emu = start_emulator(scenario(mailboxes=[CUSTOMISED]))
    code, document = diagnose(emu, "--write-test-mailbox", "nobody@contoso.com")
    assert code == 1
    assert assumption(document, "write.shapes")["verdict"] == "failed"
    assert emu.invocations("Set-Mailbox") == []
