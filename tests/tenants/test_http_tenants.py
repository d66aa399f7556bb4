"""POST /api/remediate with many tenants: the request names its tenant, the caller's app role may be limited to
tenants, and the run gets that tenant's settings. The rules through `handle` (pure), then one call end to end."""

from __future__ import annotations

import base64
import json

import pytest

from shared.model import ControlResult, Outcome, RemediationResult, RunReport, Status
from shared.runtime.http_api import REMEDIATE_ROLE, handle, tenant_role
from tests.functions.harness import call_http, events
from tests.support.tenant import TENANT_ID, scenario

OTHER = "22222222-2222-2222-2222-222222222222"
EASY_AUTH = {"WEBSITE_AUTH_ENABLED": "true"}


def caller(*roles):
    document = {"auth_typ": "aad", "claims": [{"typ": "roles", "val": role} for role in roles]}
    return {
        "x-ms-client-principal": base64.b64encode(json.dumps(document).encode()).decode(),
        "x-ms-client-principal-id": "00000000-0000-0000-0000-0000000000a1",
        "x-ms-client-principal-name": "alice@contoso.com",
    }


@pytest.fixture
def register(tmp_path):
    path = tmp_path / "tenants.json"
    path.write_text(
        json.dumps(
            [
                {"tenant_id": TENANT_ID, "organization": "contoso.onmicrosoft.com", "display_name": "Contoso"},
                {"tenant_id": OTHER, "organization": "fabrikam.onmicrosoft.com"},
                {"tenant_id": "33333333-3333-3333-3333-333333333333", "organization": "bad"},
            ]
        )
    )
    return {**EASY_AUTH, "AUDIT_TENANTS_FILE": str(path)}


def ask(env, roles, body):
    seen = []

    def run(request, who):
        seen.append(request)
        before = ControlResult("org-audit-enabled", Status.NON_COMPLIANT, "AuditDisabled = False", "True", "stub")
        step = RemediationResult("org-audit-enabled", "stub", Outcome.DRY_RUN, before, None, "stub")
        return RunReport(command="remediate", tenant_id=request.tenant_id or TENANT_ID, remediation=[step])

    status, document, _ = handle("POST", caller(*roles), json.dumps(body).encode(), env, run)
    return status, document, seen


@pytest.mark.parametrize(
    ("roles", "body", "status", "said"),
    [
        ([REMEDIATE_ROLE], {}, 400, "tenantId is required"),
        ([REMEDIATE_ROLE], {"tenantId": "44444444-4444-4444-4444-444444444444"}, 400, "not in the tenants register"),
        ([REMEDIATE_ROLE], {"tenantId": "33333333-3333-3333-3333-333333333333"}, 400, "tenant 3: organization"),
        ([REMEDIATE_ROLE], {"tenantId": "not-a-guid"}, 400, "tenantId"),
        ([tenant_role(TENANT_ID)], {"tenantId": OTHER}, 403, tenant_role(OTHER)),
        ([tenant_role(TENANT_ID)], {}, 403, "limited to tenants"),
        (["MailboxAudit.Read"], {"tenantId": TENANT_ID}, 403, REMEDIATE_ROLE),
    ],
)
def test_requests_that_name_no_usable_tenant_or_an_uncovered_one_are_refused(register, roles, body, status, said):
    answer, document, seen = ask(register, roles, body)
    assert (answer, seen) == (status, [])
    assert said in document["error"]


@pytest.mark.parametrize("roles", [[REMEDIATE_ROLE], [tenant_role(OTHER)], [tenant_role(OTHER.upper())]])
def test_the_global_role_or_the_tenants_own_role_runs_that_tenant(register, roles):
    answer, _, [request] = ask(register, roles, {"tenantId": OTHER.upper()})  # a GUID in either case
    assert answer == 200
    assert request.tenant is not None and request.tenant.organization == "fabrikam.onmicrosoft.com"


def test_without_a_register_only_the_configured_tenant_may_be_named():
    env = {**EASY_AUTH, "EXO_TENANT_ID": TENANT_ID}
    assert ask(env, [REMEDIATE_ROLE], {"tenantId": OTHER})[0] == 400
    answer, _, [request] = ask(env, [tenant_role(TENANT_ID)], {"tenantId": TENANT_ID})
    assert answer == 200 and request.tenant is None  # the single-tenant run, as before
    assert ask(env, [REMEDIATE_ROLE], {})[0] == 200


@pytest.mark.e2e
def test_a_tenant_limited_caller_remediates_its_tenant_end_to_end(start_emulator, register):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    body = json.dumps({"controls": ["org-audit-enabled"], "dryRun": False, "tenantId": TENANT_ID})
    headers = {key.upper(): value for key, value in caller(tenant_role(TENANT_ID)).items()}
    answer = call_http(emu, body, headers=headers, **register)
    assert answer["status"] == 200, answer
    assert (answer["body"]["tenant_id"], answer["body"]["tenant_name"]) == (TENANT_ID, "Contoso")
    assert answer["body"]["controls"][0]["outcome"] == "Applied"
    assert emu.tenant.organization_config["AuditDisabled"] is False
    [step] = [e for e in events(emu, "MailboxAuditRemediation")]
    assert step["properties"]["tenant_name"] == "Contoso"
    refused = call_http(emu, body.replace(TENANT_ID, OTHER), headers=headers, **register)
    assert refused["status"] == 403
