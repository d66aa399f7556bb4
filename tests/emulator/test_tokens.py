"""Token issuance over real TLS: discovery, client secret, certificate (both msal forms), managed identity."""

from __future__ import annotations

import jwt
import msal
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulator import Fault

from .support import EXO_SCOPE, Exo


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def msal_app(emu, credential) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=credential,
        authority=f"{emu.authority_url}/{emu.tenant_id}",
        instance_discovery=False,
    )


def test_discovery_document_has_what_msal_and_azure_identity_need(make_emulator):
    emu = make_emulator()
    doc = requests.get(
        f"{emu.authority_url}/{emu.tenant_id}/v2.0/.well-known/openid-configuration", verify=emu.ca_bundle, timeout=10
    ).json()
    assert doc["token_endpoint"] == f"{emu.authority_url}/{emu.tenant_id}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] and doc["jwks_uri"] and doc["issuer"]
    unknown = requests.get(
        f"{emu.authority_url}/not-a-tenant/v2.0/.well-known/openid-configuration", verify=emu.ca_bundle, timeout=10
    )
    assert unknown.status_code == 400 and "AADSTS90002" in unknown.json()["error_description"]


def test_secret_token_via_msal_carries_the_exchange_claims(make_emulator, ca_env):
    emu = make_emulator()
    ca_env(emu)
    result = msal_app(emu, emu.client_secret).acquire_token_for_client(scopes=[EXO_SCOPE])
    assert result["token_type"] == "Bearer" and result["expires_in"] > 3000
    token = claims(result["access_token"])
    assert token["aud"] == "https://outlook.office365.com"
    assert (token["tid"], token["appid"]) == (emu.tenant_id, emu.client_id)
    assert token["roles"] == ["Exchange.ManageAsApp"] and "Exchange Administrator" in token["wids"]
    assert token["exp"] - token["iat"] == 3600
    [request] = emu.token_requests
    assert request.form["grant_type"] == "client_credentials" and request.form["scope"] == EXO_SCOPE


def test_wrong_secret_unknown_client_and_unknown_tenant(make_emulator, ca_env):
    emu = make_emulator()
    ca_env(emu)
    result = msal_app(emu, "not-the-secret").acquire_token_for_client(scopes=[EXO_SCOPE])
    assert result["error"] == "invalid_client" and 7000215 in result["error_codes"]
    form = {
        "grant_type": "client_credentials",
        "client_id": "someone-else",
        "client_secret": emu.client_secret,
        "scope": EXO_SCOPE,
    }
    url = f"{emu.authority_url}/{emu.tenant_id}/oauth2/v2.0/token"
    assert requests.post(url, data=form, verify=emu.ca_bundle, timeout=10).status_code == 401
    wrong_tenant = requests.post(
        url.replace(emu.tenant_id, "other.onmicrosoft.com"), data=form, verify=emu.ca_bundle, timeout=10
    )
    assert wrong_tenant.status_code == 400 and wrong_tenant.json()["error"] == "invalid_request"
    assert 90002 in wrong_tenant.json()["error_codes"]


@pytest.mark.parametrize(("form", "alg"), [("thumbprint", "RS256"), ("public_certificate", "PS256")])
def test_certificate_assertions_in_both_msal_forms(make_emulator, ca_env, form, alg):
    emu = make_emulator()
    ca_env(emu)
    with open(emu.certificate_path, encoding="ascii") as handle:
        pem = handle.read()
    key = pem[: pem.index("-----BEGIN CERTIFICATE-----")]
    credential = {"private_key": key}
    if form == "thumbprint":
        credential["thumbprint"] = emu.certificate_thumbprint
    else:
        credential["public_certificate"] = pem[pem.index("-----BEGIN CERTIFICATE-----") :]
    result = msal_app(emu, credential).acquire_token_for_client(scopes=[EXO_SCOPE])
    assert "access_token" in result, result
    [request] = emu.token_requests
    assert jwt.get_unverified_header(request.form["client_assertion"])["alg"] == alg


def test_assertion_signed_by_another_key_is_refused(make_emulator, ca_env):
    emu = make_emulator()
    ca_env(emu)
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    result = msal_app(emu, {"private_key": other, "thumbprint": emu.certificate_thumbprint}).acquire_token_for_client(
        scopes=[EXO_SCOPE]
    )
    assert result["error"] == "invalid_client" and "signature" in result["error_description"].lower()


def test_azure_identity_certificate_credential(make_emulator, ca_env):
    from azure.identity import CertificateCredential

    emu = make_emulator()
    ca_env(emu)
    credential = CertificateCredential(
        emu.tenant_id,
        emu.client_id,
        certificate_path=emu.certificate_path,
        authority=emu.authority_url,
        disable_instance_discovery=True,
    )
    assert claims(credential.get_token(EXO_SCOPE).token)["appid"] == emu.client_id


@pytest.mark.parametrize("user_assigned", [True, False])
def test_managed_identity_via_azure_identity(make_emulator, monkeypatch, user_assigned):
    from azure.identity import ManagedIdentityCredential

    emu = make_emulator()
    monkeypatch.setenv("IDENTITY_ENDPOINT", emu.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)
    credential = (
        ManagedIdentityCredential(client_id=emu.managed_identity_client_id)
        if user_assigned
        else ManagedIdentityCredential()
    )
    access = credential.get_token(EXO_SCOPE)
    token = claims(access.token)
    assert token["aud"] == "https://outlook.office365.com" and token["roles"] == ["Exchange.ManageAsApp"]
    assert (token["appid"] == emu.managed_identity_client_id) is user_assigned
    [request] = emu.token_requests
    assert request.listener == "msi" and request.query["resource"] == "https://outlook.office365.com"
    assert request.headers["x-identity-header"] == emu.identity_header
    assert ("client_id" in request.query) is user_assigned
    assert Exo(emu, access.token).ok("Get-OrganizationConfig")["value"]


def test_msi_refuses_a_wrong_header_or_unknown_identity(make_emulator):
    emu = make_emulator()
    params = {"api-version": "2019-08-01", "resource": "https://outlook.office365.com"}
    wrong = requests.get(emu.identity_endpoint, params=params, headers={"X-IDENTITY-HEADER": "nope"}, timeout=10)
    assert wrong.status_code == 401
    unknown = requests.get(
        emu.identity_endpoint,
        params={**params, "client_id": "not-ours"},
        headers={"X-IDENTITY-HEADER": emu.identity_header},
        timeout=10,
    )
    assert unknown.status_code == 400
    good = requests.get(
        emu.identity_endpoint, params=params, headers={"X-IDENTITY-HEADER": emu.identity_header}, timeout=10
    ).json()
    assert {"access_token", "expires_on", "resource", "token_type", "client_id"} <= set(good)
    assert int(good["expires_on"]) > 0


def test_token_faults_garbage_and_short_lifetime(make_emulator):
    emu = make_emulator()
    emu.add_fault(Fault("garbage_token", listener="token"))
    url = f"{emu.authority_url}/{emu.tenant_id}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "scope": EXO_SCOPE,
    }
    garbage = requests.post(url, data=form, verify=emu.ca_bundle, timeout=10)
    assert garbage.status_code == 200 and "access_token" not in garbage.json()
    emu.add_fault(Fault("short_token_lifetime", listener="token", seconds=0))
    answer = requests.post(url, data=form, verify=emu.ca_bundle, timeout=10).json()
    assert answer["expires_in"] == 3599  # the token claims an hour but is already dead: the client meets a 401
    expired = Exo(emu, answer["access_token"]).post("Get-OrganizationConfig")
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert [f.kind for f in emu.fired_faults] == ["garbage_token", "short_token_lifetime"]
