"""grant-permissions against the emulated Graph: real HTTP and TLS, real azure-identity credentials.

In process, a ClientSecretCredential against the emulated authority is injected. As a child process, the CLI
runs its default credential chain, whose first link (AzureCliCredential) finds a stand-in `az` on PATH that
fetches the token from the emulator; nothing but GRAPH_ENDPOINT and the CA bundle is configured (no EXO_*).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from emulator import Emulator, Fault
from shared.cli.grant_permissions import add_grant_permissions_parser, run_grant_permissions
from tests.emulator.support import Exo, secret_token
from tests.integration.helpers import bearer_tokens
from tests.support.admin_sign_in import Run
from tests.support.cli import clean_env
from tests.support.tenant import REPO, scenario

NO_RIGHTS = scenario(principal={"roles": [], "directory_roles": [], "activity_roles": []})
ACTIVITY_FEED_READ = "594c1fb6-4f81-4475-ae41-0c394909246c"
MANAGEMENT_APP_ID = "c5393580-f805-4401-95e8-94b7a6ef2fc2"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
UNKNOWN = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def grant(monkeypatch, capsys):
    """`grant(emu, *argv)`: run the command in process with a real ClientSecretCredential (new per run)."""

    def run(emu: Any, *argv: str, credential: Any = None) -> Run:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_bundle)
        parser = argparse.ArgumentParser()
        add_grant_permissions_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["grant-permissions", *argv])
        credential = credential or ClientSecretCredential(
            emu.tenant_id,
            emu.client_id,
            emu.client_secret,
            authority=emu.authority_url,
            disable_instance_discovery=True,
        )
        code = run_grant_permissions(args, credential=credential, environ={"GRAPH_ENDPOINT": emu.graph_url})
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def assert_no_secrets(emu: Any, *runs: Run) -> None:
    secrets = bearer_tokens(emu) | {emu.client_secret}
    assert bearer_tokens(emu), "the test should have sent tokens"
    for run in runs:
        for secret in secrets:
            assert secret not in run.out and secret not in run.err


def feed_status(emu: Any) -> int:
    """What the audit feed answers the identity (a fresh token each time): 200, or 403 AF10001 without the role."""
    token = secret_token(emu, "https://manage.office.com/.default")
    answer = requests.get(
        f"{emu.manage_url}/api/v1.0/{emu.tenant_id}/activity/feed/subscriptions/list",
        headers={"Authorization": f"Bearer {token}"},
        verify=emu.ca_bundle,
        timeout=10,
    )
    return answer.status_code


def test_first_run_assigns_all_three_second_run_changes_nothing(start_emulator, grant):
    emu = start_emulator(NO_RIGHTS)
    principal = emu.managed_identity_principal_id
    assert Exo(emu).post("Get-OrganizationConfig").status_code == 401  # Exchange refuses the identity for now
    assert feed_status(emu) == 403  # and so does the audit feed

    first = grant(emu, "--principal-id", principal, "--json")
    assert first.code == 0, first.err
    assert first.outcomes() == [
        ("Exchange.ManageAsApp", "Assigned"),
        ("Exchange Administrator", "Assigned"),
        ("ActivityFeed.Read", "Assigned"),
    ]
    assert first.document["principal"]["id"] == principal and first.document["status"] == "Ok"
    app_role, directory_role, feed_role = emu.graph_writes()
    assert app_role.path == f"/v1.0/servicePrincipals/{principal}/appRoleAssignments" and app_role.status == 201
    assert app_role.body == {
        "principalId": principal,
        "resourceId": emu.graph.exchange_sp_id,
        "appRoleId": "dc50a0fb-09a3-484d-be87-e023b12c6440",
    }
    assert directory_role.body == {
        "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
        "principalId": principal,
        "roleDefinitionId": EXCHANGE_ADMINISTRATOR,
        "directoryScopeId": "/",
    }
    assert directory_role.status == 201
    assert feed_role.path == f"/v1.0/servicePrincipals/{principal}/appRoleAssignments" and feed_role.status == 201
    assert feed_role.body == {
        "principalId": principal,
        "resourceId": emu.graph.management_sp_id,
        "appRoleId": ACTIVITY_FEED_READ,
    }
    assert all(r.headers["authorization"].startswith("Bearer ") for r in emu.graph_requests)
    assert Exo(emu).post("Get-OrganizationConfig").status_code == 200  # the grant reached Exchange
    assert feed_status(emu) == 200  # and the audit feed

    emu.reset_log()
    second = grant(emu, "--principal-id", principal)
    assert second.code == 0, second.err
    assert "Exchange.ManageAsApp app role on Office 365 Exchange Online: already assigned" in second.out
    assert "Entra role Exchange Administrator (directory-wide): already assigned" in second.out
    assert "ActivityFeed.Read app role on Office 365 Management APIs: already assigned" in second.out
    assert "--exchange-roles check" in second.out  # the least-privilege route is offered
    assert emu.graph_writes() == []
    assert [r.operation for r in emu.graph_requests] == [
        "servicePrincipal-get",
        "servicePrincipal-get",
        "servicePrincipal-get",
        "servicePrincipal-list-appRoleAssignments",
        "rbacApplication-list-roleAssignments",
    ]
    [listing] = [r for r in emu.graph_requests if r.operation == "rbacApplication-list-roleAssignments"]
    assert listing.query == {"$filter": f"principalId eq '{principal}'"}
    assert_no_secrets(emu, first, second)


def test_read_only_assigns_global_reader_which_only_reads(start_emulator, grant):
    emu = start_emulator(NO_RIGHTS)
    run = grant(emu, "--principal-id", emu.managed_identity_principal_id, "--read-only", "--json")
    assert run.code == 0, run.err
    assert run.outcomes() == [
        ("Exchange.ManageAsApp", "Assigned"),
        ("Global Reader", "Assigned"),
        ("ActivityFeed.Read", "Assigned"),  # reading the feed is reading: --read-only grants it too
    ]
    assert emu.graph_writes()[1].body["roleDefinitionId"] == GLOBAL_READER
    exo = Exo(emu)
    assert exo.post("Get-OrganizationConfig").status_code == 200
    assert exo.post("Set-OrganizationConfig", {"AuditDisabled": False}).status_code == 403


def test_a_client_id_is_looked_up(start_emulator, grant):
    emu = start_emulator(NO_RIGHTS)
    run = grant(emu, "--principal-id", emu.managed_identity_client_id.upper(), "--json")
    assert run.code == 0, run.err
    assert run.document["principal"]["id"] == emu.managed_identity_principal_id
    assert any("is an app (client) id" in note for note in run.document["notes"])


def test_missing_rights_give_exit_2_and_name_what_is_needed(start_emulator, grant):
    emu = start_emulator(
        {**NO_RIGHTS, "graph": {"caller_permissions": ["Application.Read.All", "RoleManagement.Read.Directory"]}}
    )
    run = grant(emu, "--principal-id", emu.managed_identity_principal_id, "--json")
    assert run.code == 2
    assert run.outcomes() == [
        ("Exchange.ManageAsApp", "Failed"),
        ("Exchange Administrator", "Failed"),
        ("ActivityFeed.Read", "Failed"),
    ]
    assert "Not allowed to assign the Exchange.ManageAsApp app role on Office 365 Exchange Online" in run.err
    assert "Not allowed to assign the ActivityFeed.Read app role on Office 365 Management APIs" in run.err
    assert "AppRoleAssignment.ReadWrite.All and Application.Read.All" in run.err
    assert "Not allowed to assign the Entra role Exchange Administrator" in run.err
    assert "RoleManagement.ReadWrite.Directory" in run.err and "Privileged Role Administrator" in run.err
    assert "Authorization_RequestDenied" in run.err
    assert run.document["error"] == run.err.strip()
    assert [r.status for r in emu.graph_writes()] == [403, 403, 403]
    assert emu.graph.role_assignments == [] and emu.tenant.principal["roles"] == []
    assert emu.tenant.principal["activity_roles"] == []
    assert_no_secrets(emu, run)


def test_missing_read_rights_stop_before_any_write(start_emulator, grant):
    emu = start_emulator({**NO_RIGHTS, "graph": {"caller_permissions": []}})
    run = grant(emu, "--principal-id", emu.managed_identity_principal_id)
    assert run.code == 2
    assert "Not allowed to look up the principal" in run.err and "Application.Read.All" in run.err
    assert "Error: not every assignment is in place (exit code 2)" in run.out
    assert emu.graph_writes() == []


def test_partial_rights_assign_what_they_can_and_a_rerun_completes(start_emulator, grant):
    emu = start_emulator(NO_RIGHTS)
    emu.add_fault(Fault("status", listener="graph", cmdlet="rbacApplication-post-roleAssignments", status=403))
    first = grant(emu, "--principal-id", emu.managed_identity_principal_id, "--json")
    assert first.code == 2
    assert first.outcomes() == [
        ("Exchange.ManageAsApp", "Assigned"),
        ("Exchange Administrator", "Failed"),
        ("ActivityFeed.Read", "Assigned"),
    ]
    assert "Privileged Role Administrator" in first.err and "AppRoleAssignment" not in first.err
    second = grant(emu, "--principal-id", emu.managed_identity_principal_id, "--json")
    assert second.code == 0, second.err
    assert second.outcomes() == [
        ("Exchange.ManageAsApp", "AlreadyAssigned"),
        ("Exchange Administrator", "Assigned"),
        ("ActivityFeed.Read", "AlreadyAssigned"),
    ]


def test_an_identity_that_already_reads_the_feed_gets_only_the_exchange_grants(start_emulator, grant):
    emu = start_emulator(scenario(principal={"roles": [], "directory_roles": []}))  # activity_roles by default
    run = grant(emu, "--principal-id", emu.managed_identity_principal_id, "--json")
    assert run.code == 0, run.err
    assert run.outcomes() == [
        ("Exchange.ManageAsApp", "Assigned"),
        ("Exchange Administrator", "Assigned"),
        ("ActivityFeed.Read", "AlreadyAssigned"),
    ]
    assert [w.body.get("resourceId") for w in emu.graph_writes()] == [emu.graph.exchange_sp_id, None]


def test_a_concurrent_grant_of_the_feed_role_counts_as_already_assigned(start_emulator, grant):
    """Another run assigns ActivityFeed.Read between our read and our POST: Graph's duplicate answer is success."""
    emu = start_emulator(NO_RIGHTS)
    emu.add_fault(
        Fault(
            "status",
            listener="graph",
            cmdlet="servicePrincipal-post-appRoleAssignments",
            status=400,
            code="Request_BadRequest",
            message="Permission being assigned already exists on the object.",
            times=2,
        )
    )
    run = grant(emu, "--principal-id", emu.managed_identity_principal_id, "--json")
    assert run.code == 0, run.err
    assert [outcome for _, outcome in run.outcomes()] == ["AlreadyAssigned", "Assigned", "AlreadyAssigned"]
    assert [m for m in (a["message"] for a in run.document["assignments"]) if "concurrent" in m] != []


def test_an_unknown_principal_is_exit_2_and_nothing_is_written(start_emulator, grant):
    emu = start_emulator(NO_RIGHTS)
    run = grant(emu, "--principal-id", UNKNOWN, "--json")
    assert run.code == 2
    assert f"No service principal with object id or app (client) id {UNKNOWN}" in run.err
    assert "IDENTITY_PRINCIPAL_ID" in run.err
    assert run.document["principal"] is None and run.document["assignments"] == []
    assert [(r.operation, r.status) for r in emu.graph_requests] == [("servicePrincipal-get", 404)] * 2
    assert emu.graph_writes() == []


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            Fault(
                "status",
                listener="graph",
                cmdlet="servicePrincipal-list-appRoleAssignments",
                status=500,
                code="UnknownError",
                message="Backend exploded.",
            ),
            "Could not read the principal's app role assignments: Graph answered 500 (UnknownError: Backend exploded.)",
        ),
        (
            Fault(
                "status", listener="graph", cmdlet="servicePrincipal-list-appRoleAssignments", status=502, body="html"
            ),
            "Graph answered 502 (HTTP502: <html>",
        ),
        (
            Fault(
                "status",
                listener="graph",
                cmdlet="rbacApplication-list-roleAssignments",
                status=429,
                headers={"Retry-After": "30"},
            ),
            "Graph is throttling requests (TooManyRequests",
        ),
    ],
)
def test_other_graph_errors_are_exit_2_with_graphs_code_and_message(start_emulator, grant, fault, expected):
    emu = start_emulator(NO_RIGHTS)
    emu.add_fault(fault)
    run = grant(emu, "--principal-id", emu.managed_identity_principal_id)
    assert run.code == 2
    assert expected in run.err
    assert emu.graph_writes() == []


def test_the_exchange_service_principal_missing_is_explained(start_emulator, grant):
    emu = start_emulator(NO_RIGHTS)
    with emu.lock:
        emu.graph.service_principals = [
            sp for sp in emu.graph.service_principals if sp["id"] != emu.graph.exchange_sp_id
        ]
    run = grant(emu, "--principal-id", emu.managed_identity_principal_id)
    assert run.code == 2
    assert (
        "Office 365 Exchange Online service principal (00000002-0000-0ff1-ce00-000000000000) does not exist" in run.err
    )


def test_the_management_apis_service_principal_missing_is_explained_and_nothing_is_assigned(start_emulator, grant):
    emu = start_emulator(NO_RIGHTS)
    with emu.lock:
        emu.graph.service_principals = [
            sp for sp in emu.graph.service_principals if sp["id"] != emu.graph.management_sp_id
        ]
    run = grant(emu, "--principal-id", emu.managed_identity_principal_id, "--json")
    assert run.code == 2
    assert f"Office 365 Management APIs service principal ({MANAGEMENT_APP_ID}) does not exist" in run.err
    assert f"az ad sp create --id {MANAGEMENT_APP_ID}" in run.err
    assert run.document["assignments"] == [] and emu.graph_writes() == []


def test_no_credential_is_a_clear_exit_2_without_the_token_text(start_emulator, grant):
    emu = start_emulator(NO_RIGHTS)
    leaked = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsZWFrIn0.c2lnbmF0dXJlLXRoYXQtbGVha3M"

    class NotSignedIn:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise ClientAuthenticationError(f"Please run 'az login' to setup account. Stale token {leaked}")

    run = grant(emu, "--principal-id", emu.managed_identity_principal_id, credential=NotSignedIn())
    assert run.code == 2
    assert "Could not get a Microsoft Graph token (ClientAuthenticationError)" in run.err
    assert "az login --tenant" in run.err
    assert leaked not in run.err and leaked not in run.out and "[redacted]" in run.err
    assert emu.graph_requests == []


# ---- the real command line in a child process ---------------------------------------------------------------------

FAKE_AZ = """#!{python}
# Stand-in for `az account get-access-token --output json --resource R`: a token from the emulated Entra ID.
import json, os, ssl, sys, time, urllib.parse, urllib.request
args = sys.argv[1:]
if args[:2] != ["account", "get-access-token"] or "--resource" not in args:
    sys.exit("fake az: unexpected arguments " + " ".join(args))
resource = args[args.index("--resource") + 1].rstrip("/")
form = urllib.parse.urlencode({{"grant_type": "client_credentials", "client_id": os.environ["FAKE_AZ_CLIENT_ID"],
                               "client_secret": os.environ["FAKE_AZ_CLIENT_SECRET"],
                               "scope": resource + "/.default"}}).encode()
context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
with urllib.request.urlopen(os.environ["FAKE_AZ_TOKEN_URL"], form, context=context, timeout=10) as answer:
    token = json.load(answer)
print(json.dumps({{"accessToken": token["access_token"], "expires_on": int(time.time()) + int(token["expires_in"]),
                  "tokenType": "Bearer"}}))
"""


@pytest.fixture
def cli(tmp_path: Path):
    """`cli(emu, *argv)`: `python -m shared grant-permissions ...` with only GRAPH_ENDPOINT and a signed-in az."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ.format(python=sys.executable), encoding="utf-8")
    az.chmod(az.stat().st_mode | stat.S_IXUSR)

    def run(emu: Any, *argv: str) -> subprocess.CompletedProcess[str]:
        env = {
            **clean_env(),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "GRAPH_ENDPOINT": emu.graph_url,
            "REQUESTS_CA_BUNDLE": emu.ca_bundle,
            "FAKE_AZ_TOKEN_URL": f"{emu.authority_url}/{emu.tenant_id}/oauth2/v2.0/token",
            "FAKE_AZ_CLIENT_ID": emu.client_id,
            "FAKE_AZ_CLIENT_SECRET": emu.client_secret,
        }
        assert not any(name.startswith("EXO_") for name in env)
        return subprocess.run(
            [sys.executable, "-m", "shared", "grant-permissions", *argv],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


@pytest.mark.e2e
def test_cli_grants_with_the_azure_cli_login_and_no_exo_settings(start_emulator, cli):
    emu = start_emulator(NO_RIGHTS)
    first = cli(emu, "--principal-id", emu.managed_identity_principal_id, "--json")
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    assert [a["outcome"] for a in document["assignments"]] == ["Assigned", "Assigned", "Assigned"]
    emu.reset_log()
    second = cli(emu, "--principal-id", emu.managed_identity_principal_id)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already assigned") == 3
    assert emu.graph_writes() == []
    tokens = bearer_tokens(emu)
    assert tokens and not any(t in first.stdout + first.stderr + second.stdout + second.stderr for t in tokens)


@pytest.mark.e2e
def test_cli_unknown_principal_and_help(start_emulator, cli):
    emu = start_emulator(NO_RIGHTS)
    missing = cli(emu, "--principal-id", UNKNOWN)
    assert missing.returncode == 2
    assert "No service principal" in missing.stderr
    help_text = cli(emu, "--help")
    assert help_text.returncode == 0 and "--exchange-roles remediate" in help_text.stdout


AUDIT_LOGS_QUERY_ROLE_ID = "5e1e9171-754d-478c-812c-f1755a9a4c2d"


def test_search_assigns_the_graph_audit_query_permission_once_and_the_search_then_works(grant, tmp_path):
    from datetime import UTC, datetime, timedelta

    from tests.support.cli import run_cli

    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Emulator(scenario()) as emu:
        principal = emu.managed_identity_principal_id
        first = grant(emu, "--principal-id", principal, "--search", "--json")
        second = grant(emu, "--principal-id", principal, "--search", "--json")
        writes_after_first = [w for w in emu.graph_writes() if w.body.get("appRoleId") == AUDIT_LOGS_QUERY_ROLE_ID]
        search = run_cli(
            emu,
            "search",
            "--start",
            an_hour_ago,
            "--end",
            "now",
            "--out",
            str(tmp_path / "x"),
            auth_mode="managed_identity",
            env={"GRAPH_AUDIT_POLL_SECONDS": "0"},
        )
        held = [
            a
            for a in emu.graph.app_role_assignments
            if a["principalId"] == principal and a["appRoleId"] == AUDIT_LOGS_QUERY_ROLE_ID
        ]
    assert first.code == 0, first.err
    assert ("AuditLogsQuery.Read.All", "Assigned") in first.outcomes()
    assert ("AuditLogsQuery.Read.All", "AlreadyAssigned") in second.outcomes()
    assert second.document["search"] is True
    assert len(writes_after_first) == 1 and len(held) == 1
    assert search.returncode == 0, search.stderr  # the app's Graph token now carries the permission


def test_without_search_the_graph_permission_is_not_assigned(grant):
    with Emulator(scenario()) as emu:
        run = grant(emu, "--principal-id", emu.managed_identity_principal_id, "--json")
    assert run.code == 0
    assert "AuditLogsQuery.Read.All" not in {name for name, _ in run.outcomes()}


def test_retention_policy_also_assigns_compliance_data_administrator_once_and_warns(start_emulator, grant):
    emu = start_emulator(scenario(principal={"roles": ["Exchange.ManageAsApp"], "directory_roles": ["Global Reader"]}))
    principal = emu.managed_identity_principal_id
    first = grant(emu, "--principal-id", principal, "--read-only", "--retention-policy", "--json")
    assert first.code == 0, first.err
    assert ("Compliance Data Administrator", "Assigned") in first.outcomes()
    assert any("can also create, change and delete audit retention policies" in n for n in first.document["notes"])
    posted = [w.body["roleDefinitionId"] for w in emu.graph_writes() if "roleDefinitionId" in w.body]
    assert posted == ["e6d1a23a-da11-4be4-9570-befc86d067a7"]
    with emu.lock:
        assert "Compliance Data Administrator" in emu.tenant.principal["directory_roles"]
    second = grant(emu, "--principal-id", principal, "--read-only", "--retention-policy", "--json")
    assert ("Compliance Data Administrator", "AlreadyAssigned") in second.outcomes()
    assert len(emu.graph_writes()) == 1  # the app roles were in place; the second run posts nothing
    plain = grant(emu, "--principal-id", principal, "--read-only", "--json")
    assert "Compliance Data Administrator" not in [name for name, _ in plain.outcomes()]


def test_tenant_prepares_one_customer_tenant_for_the_multi_tenant_app_idempotently(start_emulator, grant):
    emu = start_emulator()
    first = grant(emu, "--principal-id", emu.client_id, "--tenant", emu.tenant_id.upper(), "--json")
    assert first.code == 0, first.err
    url = f"https://login.microsoftonline.com/{emu.tenant_id}/adminconsent?client_id={emu.client_id}"
    assert (first.document["tenant_id"], first.document["consent_url"]) == (emu.tenant_id, url)
    assert first.document["principal"]["app_id"] == emu.client_id
    again = grant(emu, "--principal-id", emu.client_id, "--tenant", emu.tenant_id, "--json")
    assert again.code == 0, again.err
    assert {outcome for _, outcome in again.outcomes()} == {"AlreadyAssigned"}  # idempotent: nothing new
    assert all(r.path.startswith("/v1.0/") for r in emu.graph_requests)  # Graph only


def test_tenant_without_consent_names_the_consent_url_and_a_bad_tenant_sends_nothing(start_emulator, grant):
    emu = start_emulator()
    run = grant(emu, "--principal-id", UNKNOWN, "--tenant", emu.tenant_id, "--json")
    assert run.code == 2
    assert f"{emu.tenant_id}/adminconsent?client_id={UNKNOWN}" in run.err
    before = len(emu.graph_requests)
    bad = grant(emu, "--principal-id", emu.client_id, "--tenant", "contoso", "--json")
    assert bad.code == 2 and "--tenant must be" in bad.err
    assert len(emu.graph_requests) == before


def test_tenant_refuses_a_sign_in_for_another_tenant_before_anything_is_read_there(start_emulator, grant):
    emu = start_emulator()
    customer = "9f9f9f9f-1111-2222-3333-444455556666"  # the credential signs in to the emulator's own tenant
    before = len(emu.graph_requests)
    run = grant(emu, "--principal-id", emu.client_id, "--tenant", customer, "--json")
    assert run.code == 2
    assert f"not --tenant {customer}" in run.err and emu.tenant_id in run.err
    assert len(emu.graph_requests) == before  # nothing read, nothing granted in the provider's own tenant
    assert emu.graph_writes() == []
