"""POST /api/remediate end to end: the function, the emulator, real tokens, real telemetry."""

from __future__ import annotations

import base64
import json

import pytest

from tests.functions.harness import call_http, events
from tests.support.tenant import scenario, tenant_traffic

pytestmark = pytest.mark.e2e  # every test here invokes a function in a child process (harness.py)

NON_COMPLIANT = scenario(organization_config={"AuditDisabled": True})
EASY_AUTH = {"WEBSITE_AUTH_ENABLED": "true"}
ORG_ONLY = '{"controls": ["org-audit-enabled"], "dryRun": false}'


def principal_headers(*roles: str, claim_type: str = "roles") -> dict[str, str]:
    document = {
        "auth_typ": "aad",
        "claims": [{"typ": claim_type, "val": role} for role in roles],
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    return {
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(document).encode()).decode(),
        "X-MS-CLIENT-PRINCIPAL-ID": "00000000-0000-0000-0000-0000000000a1",
        "X-MS-CLIENT-PRINCIPAL-NAME": "alice@contoso.com",
    }


AUTHORISED = principal_headers("MailboxAudit.Remediate")


@pytest.mark.parametrize("claim_type", ["roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"])
def test_authorised_caller_applies_and_verifies(start_emulator, claim_type):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(
        emu, ORG_ONLY, headers=principal_headers("MailboxAudit.Remediate", claim_type=claim_type), **EASY_AUTH
    )
    assert answer["status"] == 200 and answer["mimetype"] == "application/json"
    body = answer["body"]
    assert body["caller"] == "alice@contoso.com (00000000-0000-0000-0000-0000000000a1)"
    [control] = body["controls"]
    assert control["outcome"] == "Applied"
    assert control["before"] == {"status": "NonCompliant", "actual": "AuditDisabled = True"}
    assert control["after"] == {"status": "Compliant", "actual": "AuditDisabled = False"}
    assert control["action"] == "Set-OrganizationConfig -AuditDisabled $false"
    assert emu.tenant.organization_config["AuditDisabled"] is False
    [event] = events(emu, "MailboxAuditRemediation")
    assert event["properties"]["caller"] == body["caller"]
    assert event["properties"]["run_id"] == body["run_id"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (principal_headers(), 403),
        (principal_headers("MailboxAudit.Read"), 403),
        ({"X-MS-CLIENT-PRINCIPAL": "%%%garbage%%%"}, 401),
    ],
)
def test_unauthorised_callers_write_nothing(start_emulator, headers, status):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(emu, ORG_ONLY, headers=headers, **EASY_AUTH)
    assert answer["status"] == status
    assert "error" in answer["body"]
    assert tenant_traffic(emu) == []
    assert emu.tenant.organization_config["AuditDisabled"] is True


def test_forged_principal_without_app_service_authentication_is_refused(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(emu, ORG_ONLY, headers=AUTHORISED)
    assert answer["status"] == 403
    assert emu.writes() == []


def test_key_only_mode_records_the_function_key_as_caller(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(emu, ORG_ONLY, REMEDIATION_ALLOW_KEY_ONLY="true")
    assert answer["status"] == 200
    assert answer["body"]["caller"] == "function-key"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ('{"dryRun": "yes"}', 400),
        ('{"controls": ["bogus"]}', 400),
        ('{"unknown": 1}', 400),
        ("x" * (64 * 1024 + 1), 413),
    ],
)
def test_malformed_and_oversized_bodies_write_nothing(start_emulator, body, status):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(emu, body, headers=AUTHORISED, **EASY_AUTH)
    assert answer["status"] == status
    assert tenant_traffic(emu) == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_405(start_emulator, method):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(emu, ORG_ONLY, method=method, headers=AUTHORISED, **EASY_AUTH)
    assert answer["status"] == 405
    assert answer["headers"].get("Allow") == "POST"
    assert tenant_traffic(emu) == []


def test_dry_run_writes_nothing(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(emu, '{"dryRun": true, "controls": ["org-audit-enabled"]}', headers=AUTHORISED, **EASY_AUTH)
    assert answer["status"] == 200
    assert answer["body"]["controls"][0]["outcome"] == "DryRun"
    assert emu.writes() == []
    [event] = events(emu, "MailboxAuditRemediation")
    assert event["properties"]["outcome"] == "DryRun"


def test_two_concurrent_requests_make_one_write_and_agree(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    answers = call_http(emu, ORG_ONLY, headers=AUTHORISED, concurrent=2, **EASY_AUTH)
    assert [answer["status"] for answer in answers] == [200, 200]
    outcomes = sorted(answer["body"]["controls"][0]["outcome"] for answer in answers)
    assert outcomes == ["AlreadyCompliant", "Applied"]
    assert len(emu.invocations("Set-OrganizationConfig")) == 1
    assert all(answer["body"]["controls"][0]["after"]["status"] == "Compliant" for answer in answers)


def test_unconfigured_app_answers_503_not_500(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(emu, ORG_ONLY, headers=AUTHORISED, EXO_TENANT_ID="", **EASY_AUTH)
    assert answer["status"] == 503
    assert "EXO_TENANT_ID" in answer["body"]["error"]
    assert tenant_traffic(emu) == []


def test_two_instances_at_once_make_one_write_through_the_storage_lease(start_emulator, azurite):
    """Two processes stand for two Flex instances: only the blob lease in the app's storage keeps them apart."""
    from concurrent.futures import ThreadPoolExecutor

    emu = start_emulator(NON_COMPLIANT)
    storage = {"AzureWebJobsStorage": azurite.connection_string, **EASY_AUTH}
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: call_http(emu, ORG_ONLY, headers=AUTHORISED, **storage), range(2)))
    assert [answer["status"] for answer in answers] == [200, 200]
    assert sorted(a["body"]["controls"][0]["outcome"] for a in answers) == ["AlreadyCompliant", "Applied"]
    assert len(emu.invocations("Set-OrganizationConfig")) == 1
    assert {a["body"]["controls"][0]["after"]["status"] for a in answers} == {"Compliant"}


def test_an_unreachable_lock_store_means_no_write(start_emulator):
    from tests.support.report_tools import connection_string, free_port

    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(
        emu, ORG_ONLY, headers=AUTHORISED, AzureWebJobsStorage=connection_string(free_port()), **EASY_AUTH
    )
    assert emu.writes() == []
    assert answer["status"] == 503
    assert answer["body"]["status"] == "Error"
    assert "write lock" in answer["body"]["error"]


def test_a_bare_post_is_a_dry_run(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(emu, "", headers=AUTHORISED, **EASY_AUTH)
    assert answer["status"] == 200 and answer["body"]["dry_run"] is True
    assert emu.writes() == []


def test_a_bad_storage_setting_is_an_error_answer_not_a_crash(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    answer = call_http(emu, ORG_ONLY, headers=AUTHORISED, AzureWebJobsStorage="not a connection string", **EASY_AUTH)
    assert answer["status"] == 503
    assert "AzureWebJobsStorage" in answer["body"]["error"]
    assert emu.writes() == []
