"""grant-permissions without a network: the pure planner, the error messages, the Graph client's guards."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
import requests

from shared.cli.grant_permissions import add_grant_permissions_parser, run_grant_permissions
from shared.config.clouds import CLOUDS, Cloud
from shared.graph.client import GraphClient, GraphError, parse_error
from shared.graph.grant_plan import (
    ACTIVITY_FEED_READ_ROLE_ID,
    EXCHANGE_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    GLOBAL_READER,
    MANAGE_AS_APP_ROLE_ID,
    GrantError,
    Step,
    activity_feed_read_role_id,
    explain,
    is_duplicate,
    manage_as_app_role_id,
    plan_grants,
)

PRINCIPAL = "4da4a298-f3c4-4d98-83ad-b3169a6d67d2"
EXCHANGE_SP = "53c95d94-0ed0-5e49-8059-788c7dfc3152"
MANAGEMENT_SP = "0e3bd1c6-3ab5-4d6a-9c5f-5d7f2b0a11c2"
OTHER = "9ffbfdf0-bd59-4aa8-b521-0c79d38c6d3b"


def app_role(resource: str = EXCHANGE_SP, role: str = MANAGE_AS_APP_ROLE_ID) -> dict[str, str]:
    return {"principalId": PRINCIPAL, "resourceId": resource, "appRoleId": role}


def directory_role(role: str, scope: str = "/", principal: str = PRINCIPAL) -> dict[str, str]:
    return {"principalId": principal, "roleDefinitionId": role, "directoryScopeId": scope}


def feed_role() -> dict[str, str]:
    return app_role(MANAGEMENT_SP, ACTIVITY_FEED_READ_ROLE_ID)


def plan(app_roles=(), roles=(), read_only=False):
    return plan_grants(
        principal_id=PRINCIPAL,
        exchange_sp_id=EXCHANGE_SP,
        app_role_id=MANAGE_AS_APP_ROLE_ID,
        management_sp_id=MANAGEMENT_SP,
        activity_role_id=ACTIVITY_FEED_READ_ROLE_ID,
        app_role_assignments=list(app_roles),
        role_assignments=list(roles),
        read_only=read_only,
    )


# ---- the plan -------------------------------------------------------------------------------------------------


def test_nothing_assigned_plans_all_three_posts_with_graphs_bodies():
    result = plan()
    app, role, feed = result.grants
    assert not app.present and not role.present and not feed.present and result.missing == result.grants
    assert app.path == f"/servicePrincipals/{PRINCIPAL}/appRoleAssignments"
    assert app.body == {"principalId": PRINCIPAL, "resourceId": EXCHANGE_SP, "appRoleId": MANAGE_AS_APP_ROLE_ID}
    assert role.path == "/roleManagement/directory/roleAssignments"
    assert role.body == {
        "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
        "principalId": PRINCIPAL,
        "roleDefinitionId": EXCHANGE_ADMINISTRATOR,
        "directoryScopeId": "/",
    }
    assert role.name == "Exchange Administrator"
    assert feed.path == f"/servicePrincipals/{PRINCIPAL}/appRoleAssignments"
    assert feed.body == {"principalId": PRINCIPAL, "resourceId": MANAGEMENT_SP, "appRoleId": ACTIVITY_FEED_READ_ROLE_ID}
    assert (feed.kind, feed.name) == ("appRole", "ActivityFeed.Read")
    assert feed.label == "ActivityFeed.Read app role on Office 365 Management APIs"
    assert app.label == "Exchange.ManageAsApp app role on Office 365 Exchange Online"
    assert result.notes == ()


def test_everything_in_place_plans_no_post():
    result = plan([app_role(), feed_role()], [directory_role(EXCHANGE_ADMINISTRATOR)])
    assert result.missing == ()


def test_only_the_feed_role_missing_plans_only_its_post():
    [missing] = plan([app_role()], [directory_role(GLOBAL_READER)], read_only=True).missing
    assert (missing.name, missing.body["resourceId"]) == ("ActivityFeed.Read", MANAGEMENT_SP)


@pytest.mark.parametrize(
    "assignment",
    [
        app_role(EXCHANGE_SP, ACTIVITY_FEED_READ_ROLE_ID),  # the right role id on the wrong resource
        app_role(MANAGEMENT_SP, "4807a72c-ad38-4250-94c9-4eabfe26cd55"),  # ActivityFeed.ReadDlp is not Read
    ],
)
def test_another_management_role_or_resource_does_not_count_for_the_feed(assignment):
    assert [g.name for g in plan([app_role(), assignment], [directory_role(EXCHANGE_ADMINISTRATOR)]).missing] == [
        "ActivityFeed.Read"
    ]


def test_read_only_wants_global_reader():
    result = plan([app_role(), feed_role()], [], read_only=True)
    [missing] = result.missing
    assert (missing.name, missing.body["roleDefinitionId"]) == ("Global Reader", GLOBAL_READER)


def test_ids_compare_case_insensitively():
    result = plan(
        [
            app_role(EXCHANGE_SP.upper(), MANAGE_AS_APP_ROLE_ID.upper()),
            app_role(MANAGEMENT_SP.upper(), ACTIVITY_FEED_READ_ROLE_ID.upper()),
        ],
        [directory_role(EXCHANGE_ADMINISTRATOR.upper(), principal=PRINCIPAL.upper())],
    )
    assert result.missing == ()


@pytest.mark.parametrize("assignment", [app_role(resource=OTHER), app_role(role=OTHER)])
def test_an_app_role_on_another_resource_or_another_role_does_not_count(assignment):
    assert [g.name for g in plan([assignment, feed_role()]).missing] == [
        "Exchange.ManageAsApp",
        "Exchange Administrator",
    ]


def test_role_assignments_of_other_principals_do_not_count():
    """Should a proxy ignore $filter, another principal's Exchange Administrator must not satisfy the plan."""
    others = [directory_role(EXCHANGE_ADMINISTRATOR, principal=OTHER)]
    assert [g.kind for g in plan([app_role(), feed_role()], others).missing] == ["directoryRole"]


def test_a_scoped_assignment_is_not_enough_and_says_why():
    result = plan([app_role(), feed_role()], [directory_role(EXCHANGE_ADMINISTRATOR, scope="/administrativeUnits/au1")])
    assert [g.kind for g in result.missing] == ["directoryRole"]
    assert "only on scope /administrativeUnits/au1" in result.notes[0]


def test_notes_point_out_more_privilege_than_needed():
    read_only = plan([app_role(), feed_role()], [directory_role(EXCHANGE_ADMINISTRATOR)], read_only=True)
    assert [g.name for g in read_only.missing] == ["Global Reader"]
    assert "also holds Exchange Administrator" in read_only.notes[0]
    full = plan([app_role()], [directory_role(GLOBAL_READER), directory_role(GLOBAL_ADMINISTRATOR)])
    assert any("Global Reader" in note for note in full.notes)
    assert any("Global Administrator, far more" in note for note in full.notes)


def test_the_manage_as_app_role_id_comes_from_the_tenants_service_principal():
    sp = {
        "appRoles": [
            {"id": "AAAA", "value": "full_access_as_app"},
            {"id": MANAGE_AS_APP_ROLE_ID.upper(), "value": "Exchange.ManageAsApp", "isEnabled": True},
        ]
    }
    assert manage_as_app_role_id(sp) == MANAGE_AS_APP_ROLE_ID
    for broken in ({"appRoles": []}, {"appRoles": [{"id": "x", "value": "Exchange.ManageAsApp", "isEnabled": False}]}):
        with pytest.raises(GrantError, match=r"no enabled Exchange\.ManageAsApp"):
            manage_as_app_role_id(broken)


def test_the_activity_feed_role_id_comes_from_the_management_apis_and_must_be_an_application_permission():
    sp = {
        "appRoles": [
            {"id": "4807a72c-ad38-4250-94c9-4eabfe26cd55", "value": "ActivityFeed.ReadDlp"},
            {
                "id": ACTIVITY_FEED_READ_ROLE_ID.upper(),
                "value": "ActivityFeed.Read",
                "allowedMemberTypes": ["Application"],
            },
        ]
    }
    assert activity_feed_read_role_id(sp) == ACTIVITY_FEED_READ_ROLE_ID
    delegated_only = {"appRoles": [{"id": "y", "value": "ActivityFeed.Read", "allowedMemberTypes": ["User"]}]}
    for broken in ({"appRoles": []}, delegated_only):
        with pytest.raises(GrantError, match=r"Office 365 Management APIs .* no enabled ActivityFeed\.Read"):
            activity_feed_read_role_id(broken)


# ---- messages -------------------------------------------------------------------------------------------------


def forbidden() -> GraphError:
    return GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", request_id="r-1"
    )


def test_403_on_the_app_role_names_its_graph_permissions():
    text = explain(Step.ASSIGN_APP_ROLE, forbidden())
    assert "AppRoleAssignment.ReadWrite.All and Application.Read.All" in text
    assert "Authorization_RequestDenied" in text and "request-id r-1" in text


def test_403_on_the_directory_role_names_privileged_role_administrator():
    text = explain(Step.ASSIGN_DIRECTORY_ROLE, forbidden(), "assign the Entra role Global Reader")
    assert text.startswith("Not allowed to assign the Entra role Global Reader")
    assert "RoleManagement.ReadWrite.Directory" in text and "Privileged Role Administrator" in text


def test_other_errors_keep_graphs_code_and_message():
    assert "az login --tenant" in explain(Step.FIND_PRINCIPAL, GraphError(401, "InvalidAuthenticationToken", "x"))
    assert "run the command again" in explain(Step.READ_APP_ROLES, GraphError(429, "TooManyRequests", "slow"))
    text = explain(Step.READ_APP_ROLES, GraphError(500, "UnknownError", "boom"))
    assert "500" in text and "UnknownError: boom" in text
    assert "Could not reach" in explain(Step.FIND_EXCHANGE, GraphError(None, "ConnectionError", "refused"))


def test_duplicates_are_recognised_by_graphs_texts():
    assert is_duplicate(
        GraphError(400, "Request_BadRequest", "Permission being assigned already exists on the object.")
    )
    assert is_duplicate(
        GraphError(
            400,
            "Request_BadRequest",
            "A conflicting object with one or more of the specified property values is present in the directory.",
        )
    )
    assert not is_duplicate(GraphError(400, "Request_BadRequest", "Invalid principalId."))
    assert not is_duplicate(GraphError(403, "Authorization_RequestDenied", "already exists"))


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer._content, answer.reason = status, body, "Reason"
    answer.headers.update(headers or {})
    return answer


def test_graph_error_envelope_is_parsed_and_other_bodies_fall_back():
    envelope = {
        "error": {
            "code": "Request_ResourceNotFound",
            "message": "Resource 'x' does not exist.",
            "innerError": {"request-id": "abc"},
        }
    }
    error = parse_error(response(404, json.dumps(envelope).encode()), "GET", "/servicePrincipals/x")
    assert (error.status, error.code, error.message, error.request_id) == (
        404,
        "Request_ResourceNotFound",
        "Resource 'x' does not exist.",
        "abc",
    )
    assert "GET /servicePrincipals/x answered 404 Request_ResourceNotFound" in str(error)
    html = parse_error(response(502, b"<html><body>Bad gateway</body></html>"), "GET", "/x")
    assert (html.code, html.message) == ("HTTP502", "<html><body>Bad gateway</body></html>")
    assert parse_error(response(503, b"\x00\x00"), "GET", "/x").message == "Reason"


# ---- the Graph client's guards (a stub session: no sockets) --------------------------------------------------------


class Token:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


class Credential:
    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Token:
        self.scopes.append(scopes)
        return Token()


class Session:
    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append((method, url, kwargs))
        status, body = self.answers.pop(0)
        return response(status, json.dumps(body).encode())


def test_client_builds_graph_urls_and_follows_same_origin_next_links():
    session = Session(
        (200, {"value": [{"id": 1}], "@odata.nextLink": "https://graph.microsoft.com/v1.0/x?$skip=1"}),
        (200, {"value": [{"id": 2}]}),
    )
    credential = Credential()
    client = GraphClient(
        "https://graph.microsoft.com/", credential, "https://graph.microsoft.com/.default", session=session
    )  # type: ignore[arg-type]
    items = client.get_all("/roleManagement/directory/roleAssignments", {"$filter": f"principalId eq '{PRINCIPAL}'"})
    assert items == [{"id": 1}, {"id": 2}]
    assert session.calls[0][1] == (
        "https://graph.microsoft.com/v1.0/roleManagement/directory/roleAssignments"
        f"?$filter=principalId%20eq%20'{PRINCIPAL}'"
    )
    assert session.calls[0][2]["allow_redirects"] is False
    assert session.calls[0][2]["headers"]["Authorization"] == f"Bearer {Token.token}"
    assert credential.scopes == [("https://graph.microsoft.com/.default",)]  # one token for both pages


@pytest.mark.parametrize(
    "link",
    ["https://evil.example/v1.0/x", "http://graph.microsoft.com/v1.0/x", "https://graph.microsoft.com:8443/v1.0/x"],
)
def test_client_refuses_next_links_to_another_origin(link):
    session = Session((200, {"value": [], "@odata.nextLink": link}))
    client = GraphClient("https://graph.microsoft.com", Credential(), "s", session=session)  # type: ignore[arg-type]
    with pytest.raises(GraphError, match="another host"):
        client.get_all("/x")
    assert len(session.calls) == 1


def test_client_stops_a_next_link_loop():
    loop = {"value": [], "@odata.nextLink": "https://graph.microsoft.com/v1.0/x"}
    client = GraphClient("https://graph.microsoft.com", Credential(), "s", session=Session((200, loop), (200, loop)))  # type: ignore[arg-type]
    with pytest.raises(GraphError, match="repeat"):
        client.get_all("/x")


# ---- clouds and configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cloud", "host"),
    [
        ("global", "graph.microsoft.com"),
        ("gcchigh", "graph.microsoft.us"),
        ("dod", "dod-graph.microsoft.us"),
        ("china", "microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_each_cloud_has_its_graph_host(cloud, host):
    assert CLOUDS[cloud].graph_url == f"https://{host}"
    assert CLOUDS[cloud].graph_scope == f"https://{host}/.default"


def test_a_cloud_defined_without_a_graph_host_defaults_to_global_graph():
    assert Cloud("x", "outlook.example", "https://login.example").graph_host == "graph.microsoft.com"


class RefusingCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Token:
        raise AssertionError("no token may be requested when the input is wrong")


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_grant_permissions_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["grant-permissions", *argv])


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["--principal-id", "not-a-guid"], {}, "--principal-id must be a GUID"),
        (
            ["--principal-id", PRINCIPAL],
            {"GRAPH_ENDPOINT": "http://graph.example.com"},
            "GRAPH_ENDPOINT: must use https",
        ),
        (
            ["--principal-id", PRINCIPAL],
            {"GRAPH_ENDPOINT": "https://graph.example.com/v1.0"},
            "GRAPH_ENDPOINT: must be",
        ),
        (["--principal-id", PRINCIPAL], {"EXO_CLOUD": "mars"}, "EXO_CLOUD: must be one of"),
    ],
)
def test_wrong_input_is_exit_2_before_anything_is_sent(capsys, argv, environ, expected):
    assert run_grant_permissions(args(*argv, "--json"), credential=RefusingCredential(), environ=environ) == 2
    out = capsys.readouterr()
    assert expected in out.err
    document = json.loads(out.out)
    assert (document["status"], document["exit_code"], document["assignments"]) == ("Error", 2, [])
    assert expected in document["error"]


def test_help_names_the_exchange_rbac_alternative():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    text = add_grant_permissions_parser(sub).format_help()
    assert "Exchange role group" in text and "New-ServicePrincipal" in text and "--exchange-roles" in text
    assert "View-Only Configuration, View-Only Recipients" in text and "Audit Logs, Organization Configuration" in text
    assert "RoleManagement.ReadWrite.Directory" in text and "AppRoleAssignment.ReadWrite.All" in text
    assert "ActivityFeed.Read" in text and "c5393580-f805-4401-95e8-94b7a6ef2fc2" in text
