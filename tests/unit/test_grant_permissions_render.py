"""grant-permissions' output without a network: the text, the JSON document, and the CLI's stderr plumbing."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import pytest
import requests

from shared import __version__
from shared.cli.grant_permissions import add_grant_permissions_parser, run_grant_permissions
from shared.cli.output import log_to_stderr
from shared.graph.grant_plan import (
    EXCHANGE_ADMINISTRATOR,
    GLOBAL_READER,
    GrantReport,
    GrantResult,
    Outcome,
    Principal,
    plan_grants,
)
from shared.graph.grant_render import LEAST_PRIVILEGE_HINT, render_text, report_document

PRINCIPAL = "4da4a298-f3c4-4d98-83ad-b3169a6d67d2"
APP_ID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
EXCHANGE_SP = "53c95d94-0ed0-5e49-8059-788c7dfc3152"
MANAGEMENT_SP = "0e3bd1c6-3ab5-4d6a-9c5f-5d7f2b0a11c2"
GRAPH = "https://graph.microsoft.com"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def report(
    *outcomes: tuple[Outcome, str],
    read_only: bool = False,
    error: str | None = None,
    principal: Principal | None = None,
    notes: tuple[str, ...] = (),
) -> GrantReport:
    grants = plan_grants(
        principal_id=PRINCIPAL,
        exchange_sp_id=EXCHANGE_SP,
        app_role_id="r",
        management_sp_id=MANAGEMENT_SP,
        activity_role_id="f",
        app_role_assignments=[],
        role_assignments=[],
        read_only=read_only,
    ).grants
    return GrantReport(
        requested_id=PRINCIPAL,
        read_only=read_only,
        graph_url=GRAPH,
        principal=principal,
        results=[GrantResult(g, o, m) for g, (o, m) in zip(grants, outcomes, strict=False)],
        notes=list(notes),
        error=error,
    )


IDENTITY = Principal(PRINCIPAL, APP_ID, "mag-identity", "ManagedIdentity")


def test_text_when_all_are_in_place_says_so_and_points_at_check_and_least_privilege():
    text = render_text(
        report(
            (Outcome.ASSIGNED, "assigned"),
            (Outcome.ALREADY_ASSIGNED, "already assigned"),
            (Outcome.ASSIGNED, "assigned"),
            principal=IDENTITY,
            notes=("a note",),
        )
    )
    assert text.splitlines() == [
        f"Granting Exchange Online and audit feed permissions to mag-identity (ManagedIdentity, object id "
        f"{PRINCIPAL}, app id {APP_ID}) via {GRAPH}",
        "  Exchange.ManageAsApp app role on Office 365 Exchange Online: assigned",
        "  Entra role Exchange Administrator (directory-wide): already assigned",
        "  ActivityFeed.Read app role on Office 365 Management APIs: assigned",
        "Note: a note",
        "All three assignments are in place (exit code 0). New assignments can take a while to reach Exchange "
        "Online and the audit feed; run `python -m shared check` to confirm.",
        LEAST_PRIVILEGE_HINT,
    ]


def test_text_of_a_failure_says_failed_and_leaves_the_explanation_to_stderr():
    text = render_text(
        report(
            (Outcome.ASSIGNED, "assigned"),
            (Outcome.FAILED, "Not allowed to assign ..."),
            (Outcome.ASSIGNED, "assigned"),
            principal=Principal(PRINCIPAL, APP_ID, "", ""),
            error="Not allowed to assign ...",
        )
    )
    lines = text.splitlines()
    assert lines[0].startswith(
        "Granting Exchange Online and audit feed permissions to (no name) (service principal, object id"
    )
    assert lines[2] == "  Entra role Exchange Administrator (directory-wide): FAILED"
    assert lines[3] == "  ActivityFeed.Read app role on Office 365 Management APIs: assigned"
    assert lines[-1] == "Error: not every assignment is in place (exit code 2)."
    assert "Not allowed" not in text and LEAST_PRIVILEGE_HINT not in text


def test_text_before_the_principal_was_found_names_the_requested_id():
    text = render_text(report(error="No service principal ..."))
    assert text.splitlines() == [
        f"Granting Exchange Online and audit feed permissions to {PRINCIPAL} via {GRAPH}",
        "Error: not every assignment is in place (exit code 2).",
    ]


def test_document_of_a_success():
    document = report_document(
        report(
            (Outcome.ASSIGNED, "assigned"),
            (Outcome.ALREADY_ASSIGNED, "already assigned"),
            (Outcome.ALREADY_ASSIGNED, "already assigned"),
            principal=IDENTITY,
            notes=("a note",),
        )
    )
    assert document == {
        "tool": "mailbox-audit-guard",
        "tool_version": __version__,
        "command": "grant-permissions",
        "graph_endpoint": GRAPH,
        "requested_id": PRINCIPAL,
        "read_only": False,
        "search": False,
        "principal": {"id": PRINCIPAL, "app_id": APP_ID, "display_name": "mag-identity", "type": "ManagedIdentity"},
        "dry_run": False,
        "permission_model": "entra-role",
        "directory_role": {"id": EXCHANGE_ADMINISTRATOR, "name": "Exchange Administrator"},
        "retention_policy": False,
        "exchange_roles": None,
        "compliance_roles": None,
        "assignments": [
            {"kind": "appRole", "name": "Exchange.ManageAsApp", "outcome": "Assigned", "message": "assigned"},
            {
                "kind": "directoryRole",
                "name": "Exchange Administrator",
                "outcome": "AlreadyAssigned",
                "message": "already assigned",
            },
            {
                "kind": "appRole",
                "name": "ActivityFeed.Read",
                "outcome": "AlreadyAssigned",
                "message": "already assigned",
            },
        ],
        "notes": ["a note"],
        "status": "Ok",
        "exit_code": 0,
        "error": None,
    }
    json.dumps(document)  # one JSON document, nothing that json cannot write


def test_document_of_an_error_read_only_and_without_a_principal():
    document = report_document(report(read_only=True, error="EXO_CLOUD: must be one of ..."))
    assert document["directory_role"] == {"id": GLOBAL_READER, "name": "Global Reader"}
    assert (document["principal"], document["assignments"], document["read_only"]) == (None, [], True)
    assert (document["status"], document["exit_code"], document["error"]) == (
        "Error",
        2,
        "EXO_CLOUD: must be one of ...",
    )


def test_one_failed_assignment_makes_the_whole_run_an_error_even_without_an_error_text():
    document = report_document(
        report((Outcome.ASSIGNED, "assigned"), (Outcome.ASSIGNED, "assigned"), (Outcome.FAILED, "refused"))
    )
    assert (document["status"], document["exit_code"]) == ("Error", 2)


# ---- the command's stderr plumbing (a stub Graph: no sockets) -------------------------------------------------------


class Token:
    token = TOKEN


class Credential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Token:
        return Token()


class Graph:
    """Answers like a tenant where the identity already holds all three assignments."""

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if "appRoleAssignments" in url:
            body: dict[str, Any] = {
                "value": [
                    {
                        "principalId": PRINCIPAL,
                        "resourceId": EXCHANGE_SP,
                        "appRoleId": "dc50a0fb-09a3-484d-be87-e023b12c6440",
                    },
                    {
                        "principalId": PRINCIPAL,
                        "resourceId": MANAGEMENT_SP,
                        "appRoleId": "594c1fb6-4f81-4475-ae41-0c394909246c",
                    },
                ]
            }
        elif "roleAssignments" in url:
            body = {
                "value": [
                    {"principalId": PRINCIPAL, "roleDefinitionId": EXCHANGE_ADMINISTRATOR, "directoryScopeId": "/"}
                ]
            }
        elif "00000002-0000-0ff1-ce00-000000000000" in url:
            body = {
                "id": EXCHANGE_SP,
                "appRoles": [{"id": "dc50a0fb-09a3-484d-be87-e023b12c6440", "value": "Exchange.ManageAsApp"}],
            }
        elif "c5393580-f805-4401-95e8-94b7a6ef2fc2" in url:
            body = {
                "id": MANAGEMENT_SP,
                "appRoles": [{"id": "594c1fb6-4f81-4475-ae41-0c394909246c", "value": "ActivityFeed.Read"}],
            }
        else:
            body = {"id": PRINCIPAL, "appId": APP_ID, "displayName": "mag-identity"}
        answer = requests.Response()
        answer.status_code, answer._content = 200, json.dumps(body).encode()
        return answer


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_grant_permissions_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["grant-permissions", "--principal-id", PRINCIPAL, *argv])
    return run_grant_permissions(
        args,
        credential=Credential(),
        session=Graph(),  # type: ignore[arg-type]
        environ={"GRAPH_ENDPOINT": GRAPH},
    )


def test_verbose_logs_each_graph_call_on_stderr_and_quiet_logs_nothing(capsys):
    assert run("-v") == 0
    verbose = capsys.readouterr()
    assert "DEBUG mailbox_audit_guard.graph: Graph GET /servicePrincipals/" + PRINCIPAL in verbose.err
    assert "already assigned" in verbose.out and "Graph GET" not in verbose.out
    assert run() == 0
    assert capsys.readouterr().err == ""


def test_the_command_leaves_logging_as_it_found_it(capsys):
    root, ours, azure = logging.getLogger(), logging.getLogger("mailbox_audit_guard"), logging.getLogger("azure")
    before = (list(root.handlers), ours.level, azure.level)
    run("-v", "--json")
    assert (list(root.handlers), ours.level, azure.level) == before
    json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("secrets", [(), ("s3cr3t-value",)])
def test_log_to_stderr_masks_tokens_and_secrets_and_leaves_out_telemetry_events(capsys, secrets):
    restore = log_to_stderr({"mailbox_audit_guard": logging.INFO}, secrets=secrets)
    try:
        logging.getLogger("mailbox_audit_guard.x").info("got %s and s3cr3t-value", TOKEN)
        logging.getLogger("mailbox_audit_guard.events").warning("RunCompleted")
    finally:
        restore()
    err = capsys.readouterr().err
    assert err.startswith("INFO mailbox_audit_guard.x: got ") and TOKEN not in err
    assert ("s3cr3t-value" in err) is not bool(secrets)
    assert "RunCompleted" not in err
