"""The emulated Microsoft Graph over real TLS: tokens, service principals, assignments, errors and faults."""

from __future__ import annotations

import jwt
import pytest
import requests

from emulator import Fault

from .support import Exo, secret_token

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
MANAGE_AS_APP = "dc50a0fb-09a3-484d-be87-e023b12c6440"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
MANAGEMENT_APP_ID = "c5393580-f805-4401-95e8-94b7a6ef2fc2"
ACTIVITY_FEED_READ = "594c1fb6-4f81-4475-ae41-0c394909246c"
NO_RIGHTS = {"principal": {"roles": [], "directory_roles": [], "activity_roles": []}}


class Graph:
    """Graph v1.0 over requests with a token from the emulated token endpoint."""

    def __init__(self, emu, token: str | None = None) -> None:
        self.emu = emu
        self.headers = {"Authorization": f"Bearer {token or secret_token(emu, GRAPH_SCOPE)}"}

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(
            f"{self.emu.graph_url}/v1.0{path}",
            params=params,
            headers=self.headers,
            verify=self.emu.ca_bundle,
            timeout=10,
        )

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(
            f"{self.emu.graph_url}/v1.0{path}", json=body, headers=self.headers, verify=self.emu.ca_bundle, timeout=10
        )


def exchange_sp(graph: Graph) -> dict:
    response = graph.get(f"/servicePrincipals(appId='{EXCHANGE_APP_ID}')", **{"$select": "id,appRoles"})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_graph_scope_yields_a_graph_token_with_the_callers_graph_permissions(make_emulator):
    emu = make_emulator()
    claims = jwt.decode(secret_token(emu, GRAPH_SCOPE), options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert set(claims["roles"]) == {
        "Application.Read.All",
        "AppRoleAssignment.ReadWrite.All",
        "RoleManagement.ReadWrite.Directory",
    }
    msi = requests.get(
        emu.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://graph.microsoft.com"},
        headers={"X-IDENTITY-HEADER": emu.identity_header},
        timeout=10,
    ).json()
    assert jwt.decode(msi["access_token"], options={"verify_signature": False})["aud"] == "https://graph.microsoft.com"


def test_tokens_for_one_resource_are_refused_by_the_other(make_emulator):
    emu = make_emulator()
    refused = Graph(emu, secret_token(emu)).get(f"/servicePrincipals/{emu.managed_identity_principal_id}")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert Exo(emu, secret_token(emu, GRAPH_SCOPE)).post("Get-OrganizationConfig").status_code == 401
    assert Graph(emu, "not-a-token").get("/servicePrincipals").status_code == 401


def test_service_principals_by_id_app_id_and_filter(make_emulator):
    emu = make_emulator()
    graph = Graph(emu)
    sp = exchange_sp(graph)
    assert set(sp) == {"@odata.context", "id", "appRoles"}
    role = next(r for r in sp["appRoles"] if r["value"] == "Exchange.ManageAsApp")
    assert role["id"] == MANAGE_AS_APP
    mine = graph.get(f"/servicePrincipals/{emu.managed_identity_principal_id}").json()
    assert (mine["appId"], mine["servicePrincipalType"]) == (emu.managed_identity_client_id, "ManagedIdentity")
    listed = graph.get("/servicePrincipals", **{"$filter": f"appId eq '{emu.client_id}'"}).json()["value"]
    assert [item["id"] for item in listed] == [emu.app_object_id]
    missing = graph.get("/servicePrincipals/11111111-2222-3333-4444-555555555555")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "Request_ResourceNotFound"


def test_the_scenario_principal_seeds_the_identities_assignments(make_emulator):
    emu = make_emulator({"principal": {"roles": ["Exchange.ManageAsApp"], "directory_roles": ["Global Reader"]}})
    graph = Graph(emu)
    principal = emu.managed_identity_principal_id
    assignments = graph.get(f"/servicePrincipals/{principal}/appRoleAssignments").json()["value"]
    assert {(a["resourceId"], a["appRoleId"]) for a in assignments} == {
        (exchange_sp(graph)["id"], MANAGE_AS_APP),
        (emu.graph.management_sp_id, ACTIVITY_FEED_READ),  # `activity_roles` defaults to ActivityFeed.Read
    }
    [role] = graph.get(
        "/roleManagement/directory/roleAssignments", **{"$filter": f"principalId eq '{principal}'"}
    ).json()["value"]
    assert (role["roleDefinitionId"], role["directoryScopeId"]) == ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "/")


def test_assignments_are_created_once_and_reach_exchange(make_emulator):
    emu = make_emulator(NO_RIGHTS)
    graph, principal = Graph(emu), emu.managed_identity_principal_id
    assert Exo(emu).post("Get-OrganizationConfig").status_code == 401  # no Exchange.ManageAsApp yet
    app_role = {"principalId": principal, "resourceId": exchange_sp(graph)["id"], "appRoleId": MANAGE_AS_APP}
    created = graph.post(f"/servicePrincipals/{principal}/appRoleAssignments", app_role)
    assert created.status_code == 201 and created.json()["appRoleId"] == MANAGE_AS_APP
    again = graph.post(f"/servicePrincipals/{principal}/appRoleAssignments", app_role)
    assert again.status_code == 400
    assert again.json()["error"]["message"] == "Permission being assigned already exists on the object."
    assert Exo(emu).post("Get-OrganizationConfig").status_code == 403  # the app role alone does nothing

    role = {
        "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
        "principalId": principal,
        "roleDefinitionId": EXCHANGE_ADMINISTRATOR,
        "directoryScopeId": "/",
    }
    assert graph.post("/roleManagement/directory/roleAssignments", role).status_code == 201
    conflict = graph.post("/roleManagement/directory/roleAssignments", role)
    assert conflict.status_code == 400 and "conflicting object" in conflict.json()["error"]["message"]
    assert emu.tenant.principal == {
        "roles": ["Exchange.ManageAsApp"],
        "directory_roles": ["Exchange Administrator"],
        "activity_roles": [],
    }
    assert Exo(emu).post("Get-OrganizationConfig").status_code == 200
    assert [(r.operation, r.status) for r in emu.graph_writes()] == [
        ("servicePrincipal-post-appRoleAssignments", 201),
        ("servicePrincipal-post-appRoleAssignments", 400),
        ("rbacApplication-post-roleAssignments", 201),
        ("rbacApplication-post-roleAssignments", 400),
    ]


def test_the_management_apis_offer_activity_feed_read_and_a_grant_reaches_the_feed_token(make_emulator):
    emu = make_emulator(NO_RIGHTS)
    graph, principal = Graph(emu), emu.managed_identity_principal_id
    sp = graph.get(f"/servicePrincipals(appId='{MANAGEMENT_APP_ID}')").json()
    assert (sp["id"], sp["displayName"]) == (emu.graph.management_sp_id, "Office 365 Management APIs")
    role = next(r for r in sp["appRoles"] if r["value"] == "ActivityFeed.Read")
    assert (role["id"], role["allowedMemberTypes"]) == (ACTIVITY_FEED_READ, ["Application"])
    assert graph.get(f"/servicePrincipals/{principal}/appRoleAssignments").json()["value"] == []
    manage_scope = "https://manage.office.com/.default"
    assert jwt.decode(secret_token(emu, manage_scope), options={"verify_signature": False})["roles"] == []
    body = {"principalId": principal, "resourceId": sp["id"], "appRoleId": ACTIVITY_FEED_READ}
    assert graph.post(f"/servicePrincipals/{principal}/appRoleAssignments", body).status_code == 201
    claims = jwt.decode(secret_token(emu, manage_scope), options={"verify_signature": False})
    assert claims["roles"] == ["ActivityFeed.Read"]
    assert "ActivityFeed.Read" not in jwt.decode(secret_token(emu), options={"verify_signature": False})["roles"]
    assert graph.post(f"/servicePrincipals/{principal}/appRoleAssignments", body).status_code == 400  # duplicate


def test_bad_assignment_bodies_are_refused(make_emulator):
    emu = make_emulator(NO_RIGHTS)
    graph, principal = Graph(emu), emu.managed_identity_principal_id
    exchange = exchange_sp(graph)["id"]
    wrong_role = {"principalId": principal, "resourceId": exchange, "appRoleId": EXCHANGE_ADMINISTRATOR}
    assert graph.post(f"/servicePrincipals/{principal}/appRoleAssignments", wrong_role).status_code == 400
    unknown_definition = {"principalId": principal, "roleDefinitionId": MANAGE_AS_APP, "directoryScopeId": "/"}
    assert graph.post("/roleManagement/directory/roleAssignments", unknown_definition).status_code == 404
    assert graph.get("/roleManagement/directory/roleAssignments", **{"$filter": "startswith(x,'y')"}).status_code == 400
    assert emu.graph.app_role_assignments == [] and emu.graph.role_assignments == []


@pytest.mark.parametrize(
    ("permissions", "read", "write"),
    [
        ([], 403, 403),
        (["Application.Read.All", "RoleManagement.Read.Directory"], 200, 403),
    ],
)
def test_a_caller_without_graph_permissions_gets_403_with_graphs_envelope(make_emulator, permissions, read, write):
    emu = make_emulator({**NO_RIGHTS, "graph": {"caller_permissions": permissions}})
    graph, principal = Graph(emu), emu.managed_identity_principal_id
    assert graph.get(f"/servicePrincipals/{principal}/appRoleAssignments").status_code == read
    denied = graph.post(
        "/roleManagement/directory/roleAssignments",
        {"principalId": principal, "roleDefinitionId": EXCHANGE_ADMINISTRATOR, "directoryScopeId": "/"},
    )
    assert denied.status_code == write
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    assert denied.json()["error"]["message"] == "Insufficient privileges to complete the operation."
    assert emu.graph.role_assignments == []


def test_graph_faults_answer_with_graphs_envelope_for_one_operation(make_emulator):
    emu = make_emulator()
    emu.add_fault(Fault("status", listener="graph", cmdlet="servicePrincipal-list-appRoleAssignments", status=503))
    graph, principal = Graph(emu), emu.managed_identity_principal_id
    assert graph.get(f"/servicePrincipals/{principal}").status_code == 200
    failed = graph.get(f"/servicePrincipals/{principal}/appRoleAssignments")
    assert failed.status_code == 503 and failed.json()["error"]["code"] == "ServiceUnavailable"
    assert graph.get(f"/servicePrincipals/{principal}/appRoleAssignments").status_code == 200
    [fired] = emu.fired_faults
    assert (fired.listener, fired.cmdlet) == ("graph", "servicePrincipal-list-appRoleAssignments")


def test_unknown_graph_paths_and_the_env(make_emulator):
    emu = make_emulator()
    assert Graph(emu).get("/users").status_code == 400
    assert emu.env("secret")["GRAPH_ENDPOINT"] == emu.graph_url
    assert emu.graph_url.startswith("https://127.0.0.1:") and emu.graph_url != emu.exchange_url
