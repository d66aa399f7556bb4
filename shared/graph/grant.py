"""grant-permissions against Microsoft Graph: read what the principal holds, plan, POST only what is missing.

A second run finds every assignment and sends no POST. Graph's errors become administrator messages
(`grant_plan.explain`); nothing here prints or parses arguments (shared/cli/grant_permissions.py does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.graph.client import GraphClient
from shared.graph.errors import GraphAuthError, GraphError
from shared.graph.grant_plan import (
    EXCHANGE_APP_ID,
    EXCHANGE_DISPLAY_NAME,
    GRAPH_APP_ID,
    GRAPH_DISPLAY_NAME,
    MANAGEMENT_APP_ID,
    MANAGEMENT_DISPLAY_NAME,
    Grant,
    GrantError,
    GrantReport,
    GrantResult,
    Outcome,
    Principal,
    Step,
    activity_feed_read_role_id,
    audit_logs_query_role_id,
    explain,
    is_duplicate,
    manage_as_app_role_id,
    plan_grants,
)

PRINCIPAL_SELECT = "id,appId,displayName,servicePrincipalType"


def _read[T](step: Step, call: Callable[[], T]) -> T:
    try:
        return call()
    except GraphError as exc:
        raise GrantError(explain(step, exc)) from None


def find_principal(client: GraphClient, reference: str, notes: list[str]) -> Principal:
    """The service principal by object id, else by app (client) id; GrantError when neither exists."""
    try:
        return Principal.from_graph(client.get(f"/servicePrincipals/{reference}", {"$select": PRINCIPAL_SELECT}))
    except GraphError as exc:
        if exc.status != 404:
            raise GrantError(explain(Step.FIND_PRINCIPAL, exc)) from None
    try:
        found = Principal.from_graph(
            client.get(f"/servicePrincipals(appId='{reference}')", {"$select": PRINCIPAL_SELECT})
        )
    except GraphError as exc:
        if exc.status != 404:
            raise GrantError(explain(Step.FIND_PRINCIPAL, exc)) from None
        raise GrantError(
            f"No service principal with object id or app (client) id {reference} in this tenant (Graph answered 404 "
            f"{exc.code}). Pass the managed identity's principal id (`azd env get-value IDENTITY_PRINCIPAL_ID`), "
            "and sign in to the tenant that holds it (`az login --tenant <tenant id>`). Nothing was assigned."
        ) from None
    notes.append(f"{reference} is an app (client) id; using its service principal {found.id}.")
    return found


def _find_resource(client: GraphClient, app_id: str, step: Step, missing: str) -> Mapping[str, Any]:
    """The service principal of a Microsoft API (`id`, `appRoles`) by its app id; GrantError naming `missing` when
    the tenant has none (404), the step's explanation for any other Graph error."""
    try:
        return client.get(f"/servicePrincipals(appId='{app_id}')", {"$select": "id,appId,appRoles"})
    except GraphError as exc:
        if exc.status == 404:
            raise GrantError(f"{missing} Nothing was assigned.") from None
        raise GrantError(explain(step, exc)) from None


def find_exchange(client: GraphClient) -> tuple[str, str]:
    """(object id, Exchange.ManageAsApp role id) of the Office 365 Exchange Online service principal."""
    exchange = _find_resource(
        client,
        EXCHANGE_APP_ID,
        Step.FIND_EXCHANGE,
        f"The {EXCHANGE_DISPLAY_NAME} service principal ({EXCHANGE_APP_ID}) does not exist in this tenant: it has no "
        "Exchange Online, or you signed in to another tenant.",
    )
    return str(exchange.get("id", "")).lower(), manage_as_app_role_id(exchange)


def find_management(client: GraphClient) -> tuple[str, str]:
    """(object id, ActivityFeed.Read role id) of the Office 365 Management APIs service principal."""
    management = _find_resource(
        client,
        MANAGEMENT_APP_ID,
        Step.FIND_MANAGEMENT,
        f"The {MANAGEMENT_DISPLAY_NAME} service principal ({MANAGEMENT_APP_ID}) does not exist in this tenant (the "
        "activity watch reads the audit feed through it), or you signed in to another tenant. An administrator can "
        f"add it: `az ad sp create --id {MANAGEMENT_APP_ID}`; then run this command again.",
    )
    return str(management.get("id", "")).lower(), activity_feed_read_role_id(management)


def find_graph(client: GraphClient) -> tuple[str, str]:
    """(object id, AuditLogsQuery.Read.All role id) of the Microsoft Graph service principal (for --search)."""
    graph = _find_resource(
        client,
        GRAPH_APP_ID,
        Step.FIND_GRAPH,
        f"The {GRAPH_DISPLAY_NAME} service principal ({GRAPH_APP_ID}) was not found: you signed in to another tenant?",
    )
    return str(graph.get("id", "")).lower(), audit_logs_query_role_id(graph)


def grant_permissions(
    client: GraphClient,
    reference: str,
    *,
    read_only: bool,
    search: bool = False,
    retention_policy: bool = False,
    directory_role: bool = True,
    dry_run: bool = False,
) -> GrantReport:
    """Look up, plan, assign what is missing. Never raises for Graph or credential trouble: see `report.error`.

    `search`: also the Microsoft Graph application permission the investigation search needs; `retention_policy`:
    also the compliance role the opt-in audit-retention-policy control needs. `directory_role` False: no Entra role
    for Exchange (Exchange role groups give the access). `dry_run`: plan only, POST nothing."""
    report = GrantReport(
        requested_id=reference,
        read_only=read_only,
        graph_url=client.base_url,
        search=search,
        retention_policy=retention_policy,
        directory_role=directory_role,
        dry_run=dry_run,
    )
    try:
        principal = report.principal = find_principal(client, reference, report.notes)
        exchange_id, role_id = find_exchange(client)
        management_id, activity_role_id = find_management(client)
        graph_id, audit_role_id = find_graph(client) if search else (None, None)
        app_roles = _read(
            Step.READ_APP_ROLES, lambda: client.get_all(f"/servicePrincipals/{principal.id}/appRoleAssignments")
        )
        directory_roles = _read(
            Step.READ_DIRECTORY_ROLES,
            lambda: client.get_all(
                "/roleManagement/directory/roleAssignments", {"$filter": f"principalId eq '{principal.id}'"}
            ),
        )
    except (GrantError, GraphAuthError) as exc:
        report.error = str(exc)
        return report
    plan = plan_grants(
        principal_id=principal.id,
        exchange_sp_id=exchange_id,
        app_role_id=role_id,
        management_sp_id=management_id,
        activity_role_id=activity_role_id,
        app_role_assignments=app_roles,
        role_assignments=directory_roles,
        read_only=read_only,
        graph_sp_id=graph_id,
        audit_query_role_id=audit_role_id,
        retention_policy=retention_policy,
        directory_role=directory_role,
    )
    report.notes.extend(plan.notes)
    for grant in plan.grants:
        report.results.append(_apply(client, grant, dry_run))
    failed = [r.message for r in report.results if r.outcome is Outcome.FAILED]
    if failed:
        report.error = "\n".join(failed)
    return report


def _apply(client: GraphClient, grant: Grant, dry_run: bool = False) -> GrantResult:
    if grant.present:
        return GrantResult(grant, Outcome.ALREADY_ASSIGNED, "already assigned")
    if dry_run:
        return GrantResult(grant, Outcome.PLANNED, "would be assigned (--dry-run)")
    try:
        client.post(grant.path, grant.body)
    except GraphError as exc:
        if is_duplicate(exc):
            return GrantResult(grant, Outcome.ALREADY_ASSIGNED, "already assigned (by a concurrent change)")
        return GrantResult(grant, Outcome.FAILED, explain(grant.step, exc, f"assign the {grant.label}"))
    except GraphAuthError as exc:
        return GrantResult(grant, Outcome.FAILED, str(exc))
    return GrantResult(grant, Outcome.ASSIGNED, "assigned")
