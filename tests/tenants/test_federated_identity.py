"""EXO_AUTH_MODE=federated_identity against the emulated Entra ID and managed identity, with real msal and
azure-identity: the managed identity's token for api://AzureADTokenExchange is the multi-tenant app's client
assertion; no secret anywhere; tokens cached per tenant, the assertion shared by every tenant."""

from __future__ import annotations

import json

import pytest

from shared.config.settings import ConfigError, Settings
from shared.exchange.auth import TokenError, token_provider_for
from shared.jwt_claims import unverified_claims
from tests.support.cli import cli_json, run_cli
from tests.support.tenant import TENANT_ID

ORG = ("--control", "org-audit-enabled")
UNKNOWN = "99999999-9999-9999-9999-999999999999"


def msi_requests(emu):
    return [r for r in emu.token_requests if r.listener == "msi"]


def login_requests(emu):
    return [r for r in emu.token_requests if r.listener != "msi"]


def test_a_check_runs_on_the_managed_identitys_assertion_with_no_secret(start_emulator):
    emu = start_emulator()
    result = run_cli(emu, "check", *ORG, "--json", auth_mode="federated_identity")
    assert result.returncode == 0, result.stdout + result.stderr
    [msi] = msi_requests(emu)
    assert msi.query["resource"] == "api://AzureADTokenExchange"
    assert msi.query["client_id"] == emu.managed_identity_client_id
    [login] = login_requests(emu)
    assert login.path == f"/{TENANT_ID}/oauth2/v2.0/token"
    assert login.form["client_id"] == emu.client_id and "client_secret" not in login.form
    assertion = unverified_claims(login.form["client_assertion"])
    assert (assertion["aud"], assertion["sub"]) == ("api://AzureADTokenExchange", emu.managed_identity_principal_id)


def test_an_identity_that_is_not_a_federated_credential_of_the_app_is_an_error_that_says_so(start_emulator):
    emu = start_emulator()
    emu.federated_identities = set()
    result = run_cli(emu, "check", *ORG, "--json", auth_mode="federated_identity")
    assert result.returncode == 2
    [control] = cli_json(result)["controls"]
    assert control["status"] == "Error" and "AADSTS70021" in control["message"]
    assert emu.managed_identity_principal_id in control["message"]  # which identity to add as a credential
    assert "eyJ" not in result.stdout + result.stderr  # never the assertion itself


def test_tokens_are_cached_per_tenant_and_the_assertion_once_for_all(start_emulator, ca_env, monkeypatch):
    emu = start_emulator()
    ca_env(emu)
    monkeypatch.setenv("IDENTITY_ENDPOINT", emu.identity_endpoint)  # azure-identity reads these itself
    monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)
    settings = Settings.from_env(emu.env("federated_identity"))
    first = token_provider_for(settings)
    token = first.get_token()
    assert token_provider_for(settings).get_token() == token  # the next run of the same tenant: no new request
    assert len(login_requests(emu)) == 1
    other = Settings.from_env({**emu.env("federated_identity"), "EXO_TENANT_ID": UNKNOWN})
    with pytest.raises(TokenError, match=f"login service at .*{UNKNOWN}"):
        token_provider_for(other).get_token()  # a tenant of its own: its own sign-in, refused (unknown tenant)
    assert any(UNKNOWN in r.path for r in emu.requests)
    assert len(login_requests(emu)) == 1
    assert len(msi_requests(emu)) == 1  # one managed identity token served both tenants
    assert unverified_claims(token)["tid"] == TENANT_ID


def test_all_tenants_with_federated_identity_keeps_each_tenants_outcome_its_own(start_emulator, tmp_path):
    emu = start_emulator()
    path = tmp_path / "tenants.json"
    path.write_text(
        json.dumps(
            [
                {"tenant_id": TENANT_ID, "organization": "contoso.onmicrosoft.com"},
                {"tenant_id": UNKNOWN, "organization": "fabrikam.onmicrosoft.com"},
            ]
        )
    )
    result = run_cli(
        emu,
        "check",
        "--all-tenants",
        *ORG,
        "--json",
        auth_mode="federated_identity",
        env={"AUDIT_TENANTS_FILE": str(path)},
    )
    statuses = {t["tenant_id"]: t["status"] for t in cli_json(result)["tenants"]}
    assert statuses == {TENANT_ID: "Compliant", UNKNOWN: "Error"}
    assert result.returncode == 2


def test_federated_identity_needs_the_apps_client_id():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"EXO_TENANT_ID": TENANT_ID, "EXO_AUTH_MODE": "federated_identity"})
    assert "EXO_CLIENT_ID" in refused.value.problems
    bad = {"EXO_TENANT_ID": TENANT_ID, "EXO_AUTH_MODE": "federated_identity", "EXO_CLIENT_ID": TENANT_ID}
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**bad, "EXO_MANAGED_IDENTITY_CLIENT_ID": "me"})
    assert list(refused.value.problems) == ["EXO_MANAGED_IDENTITY_CLIENT_ID"]


GUESTS = {
    "tenants": [
        {
            "tenant_id": "22222222-2222-2222-2222-222222222222",
            "organization": "fabrikam.onmicrosoft.com",
            "organization_config": {"AuditDisabled": True},
        },
        {
            "tenant_id": "33333333-3333-3333-3333-333333333333",
            "organization": "northwind.onmicrosoft.com",
            "consented": False,
        },
    ]
}


@pytest.mark.parametrize("auth_mode", ["federated_identity", "certificate"])
def test_one_identity_checks_several_real_tenants_each_on_its_own_token(start_emulator, tmp_path, auth_mode):
    from tests.support.tenant import scenario

    emu = start_emulator(scenario(**GUESTS))
    path = tmp_path / "tenants.json"
    path.write_text(
        json.dumps(
            [
                {"tenant_id": TENANT_ID, "organization": "contoso.onmicrosoft.com"},
                *({"tenant_id": g["tenant_id"], "organization": g["organization"]} for g in GUESTS["tenants"]),
            ]
        )
    )
    result = run_cli(
        emu, "check", "--all-tenants", *ORG, "--json", auth_mode=auth_mode, env={"AUDIT_TENANTS_FILE": str(path)}
    )
    runs = {t["tenant_id"]: t for t in cli_json(result)["tenants"]}
    assert {tid: t["status"] for tid, t in runs.items()} == {
        TENANT_ID: "Compliant",
        "22222222-2222-2222-2222-222222222222": "NonCompliant",  # its own AuditDisabled, read with its own token
        "33333333-3333-3333-3333-333333333333": "Error",  # no consent there
    }
    assert "AADSTS700016" in runs["33333333-3333-3333-3333-333333333333"]["run"]["controls"][0]["message"]
    logins = {r.path.split("/")[1] for r in login_requests(emu)}
    assert logins == {TENANT_ID, *(g["tenant_id"] for g in GUESTS["tenants"])}  # one sign-in per tenant
    if auth_mode == "federated_identity":
        assert len(msi_requests(emu)) == 1  # one managed identity assertion for all three
