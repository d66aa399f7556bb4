"""Several tenants behind one emulator: one Exchange, one Entra ID (a token per tenant, per-tenant consent and
roles), one feed; the request's URL names the tenant. Real msal and requests over the emulator's TLS sockets."""

from __future__ import annotations

import msal
import pytest
import requests

from emulator import Emulator, Fault
from shared.jwt_claims import unverified_claims
from tests.emulator.support import Exo
from tests.support.tenant import TENANT_ID, scenario

FABRIKAM = "22222222-2222-2222-2222-222222222222"
NORTHWIND = "33333333-3333-3333-3333-333333333333"
GUESTS = scenario(
    tenants=[
        {
            "tenant_id": FABRIKAM,
            "organization": "fabrikam.onmicrosoft.com",
            "organization_config": {"AuditDisabled": True},
            "principal": {"roles": ["Exchange.ManageAsApp"], "directory_roles": ["Global Reader"]},
        },
        {"tenant_id": NORTHWIND, "organization": "northwind.onmicrosoft.com", "consented": False},
    ]
)


@pytest.fixture
def emu(make_emulator, ca_env):
    started = make_emulator(GUESTS)
    ca_env(started)
    return started


def token(emu: Emulator, tenant: str, scope: str = "https://outlook.office365.com/.default") -> dict:
    app = msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=emu.client_secret,
        authority=f"{emu.authority_url}/{tenant}",
        instance_discovery=False,
    )
    return app.acquire_token_for_client(scopes=[scope])


def invoke(emu: Emulator, tenant: str, access_token: str, cmdlet: str, parameters: dict | None = None):
    return Exo(emu, access_token).post(
        cmdlet, parameters or {}, url=f"{emu.exchange_url}/adminapi/beta/{tenant}/InvokeCommand"
    )


def test_each_tenant_gets_its_own_token_and_its_own_exchange(emu):
    home, guest = token(emu, TENANT_ID)["access_token"], token(emu, FABRIKAM)["access_token"]
    assert unverified_claims(guest)["tid"] == FABRIKAM and unverified_claims(home)["tid"] == TENANT_ID
    answer = invoke(emu, FABRIKAM, guest, "Get-OrganizationConfig")
    assert answer.status_code == 200
    assert answer.json()["value"][0]["AuditDisabled"] is True  # Fabrikam's state
    assert invoke(emu, TENANT_ID, home, "Get-OrganizationConfig").json()["value"][0]["AuditDisabled"] is False
    assert invoke(emu, TENANT_ID, guest, "Get-OrganizationConfig").status_code == 401  # a token is for its tenant
    assert emu.guest(FABRIKAM).tenant.organization_config["AuditDisabled"] is True
    assert emu.tenant_id == TENANT_ID  # outside a request: the home tenant, as before


def test_a_tenant_that_did_not_consent_refuses_the_app_and_roles_are_per_tenant(emu):
    refused = token(emu, NORTHWIND)
    assert refused["error"] == "unauthorized_client" and "AADSTS700016" in refused["error_description"]
    guest = token(emu, FABRIKAM)["access_token"]
    write = invoke(emu, FABRIKAM, guest, "Set-OrganizationConfig", {"AuditDisabled": False})
    assert write.status_code == 403  # Global Reader in Fabrikam: reads only
    home = token(emu, TENANT_ID)["access_token"]
    assert invoke(emu, TENANT_ID, home, "Set-OrganizationConfig", {"AuditDisabled": True}).status_code == 200


def test_a_fault_may_be_limited_to_one_tenant(emu):
    emu.add_fault(Fault("status", listener="exchange", status=429, times=-1, tenant=FABRIKAM))
    guest, home = token(emu, FABRIKAM)["access_token"], token(emu, TENANT_ID)["access_token"]
    assert invoke(emu, FABRIKAM, guest, "Get-OrganizationConfig").status_code == 429
    assert invoke(emu, TENANT_ID, home, "Get-OrganizationConfig").status_code == 200


def test_the_feed_is_per_tenant(emu):
    guest = token(emu, FABRIKAM, "https://manage.office.com/.default")["access_token"]
    start = requests.post(
        f"{emu.manage_url}/api/v1.0/{FABRIKAM}/activity/feed/subscriptions/start?contentType=Audit.Exchange",
        headers={"Authorization": f"Bearer {guest}"},
        verify=emu.ca_bundle,
        timeout=10,
    )
    assert start.status_code == 200, start.text
    assert "Audit.Exchange" in emu.guest(FABRIKAM).activity.subscriptions
    assert "Audit.Exchange" not in emu.activity.subscriptions  # the home tenant's feed is its own


def test_generated_tenants_and_bad_guests():
    emu = Emulator(
        scenario(generate_tenants={"count": 3, "template": {"organization_config": {"AuditDisabled": True}}})
    )
    assert len(emu.guest_tenant_ids) == 3
    assert emu.guest(emu.guest_tenant_ids[2]).tenant.organization == "tenant0002.onmicrosoft.com"
    with pytest.raises(ValueError, match="tenant_id and organization"):
        Emulator(scenario(tenants=[{"tenant_id": FABRIKAM}]))
    with pytest.raises(ValueError, match="faults"):
        Emulator(scenario(tenants=[{"tenant_id": FABRIKAM, "organization": "f.onmicrosoft.com", "faults": []}]))
