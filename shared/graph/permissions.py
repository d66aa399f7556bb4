"""`python -m shared grant-permissions`: give the managed identity what Exchange Online needs, through Graph.

Two assignments (exchange-admin-api.md §4.1, azure-functions.md §12), both on the identity's service principal:
1. the app role `Exchange.ManageAsApp` of the Office 365 Exchange Online service principal;
2. the Entra role Exchange Administrator (remediation) or, with --read-only, Global Reader, directory-wide.

Read everything first, plan (`plan_grants`, pure), then POST only what is missing: a second run finds both and
sends no POST. Exit 0 when both are in place, 2 on any error. Needs no EXO_* setting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import requests

from shared import __version__
from shared.config.clouds import CLOUDS, Cloud
from shared.config.settings import check_base_url
from shared.graph.client import GraphAuthError, GraphClient, GraphError, TokenCredential
from shared.redact import RedactingFilter

EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
EXCHANGE_DISPLAY_NAME = "Office 365 Exchange Online"
MANAGE_AS_APP = "Exchange.ManageAsApp"
MANAGE_AS_APP_ROLE_ID = "dc50a0fb-09a3-484d-be87-e023b12c6440"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
ROLE_NAMES = {EXCHANGE_ADMINISTRATOR: "Exchange Administrator", GLOBAL_READER: "Global Reader",
              GLOBAL_ADMINISTRATOR: "Global Administrator"}
DIRECTORY_SCOPE = "/"
PRINCIPAL_SELECT = "id,appId,displayName,servicePrincipalType"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DUPLICATE_TEXTS = ("already exists", "conflicting object")
ADMIN_ROLES = "Privileged Role Administrator (or Global Administrator)"

EPILOG = """\
Assigns, on the identity's service principal, only what is missing:
  1. the app role Exchange.ManageAsApp of "Office 365 Exchange Online" (appId 00000002-0000-0ff1-ce00-000000000000);
  2. the Entra role Exchange Administrator (needed to remediate) or, with --read-only, Global Reader (checks only),
     directory-wide.
Run it as a Privileged Role Administrator (or Global Administrator) of the Microsoft 365 tenant. Credentials: the
Azure CLI login (`az login --tenant <tenant id>`; for national clouds `az cloud set` first), then the
DefaultAzureCredential chain (environment, workload identity, managed identity, ...). An app needs the Graph
permissions AppRoleAssignment.ReadWrite.All + Application.Read.All (app role) and RoleManagement.ReadWrite.Directory
(directory role). GRAPH_ENDPOINT overrides the Graph base URL. Exit codes: 0 both in place, 2 error.

Least privilege: an Entra role applies to the whole directory. Exchange RBAC role groups are the narrower
alternative (e.g. View-Only Organization Management for checks, a custom group for remediation). Graph cannot
assign them: in Exchange Online PowerShell run `New-ServicePrincipal -AppId <client id> -ObjectId <principal id>`,
then `Add-RoleGroupMember`. That route needs the app role but no Entra role: assign the app role by hand instead of
running this command, which always assigns an Entra role too.
"""
LEAST_PRIVILEGE_HINT = ("Least privilege: Exchange RBAC role groups (New-ServicePrincipal + Add-RoleGroupMember in "
                        "Exchange Online PowerShell) can replace the directory-wide Entra role; see --help.")


class Outcome(StrEnum):
    """What happened to one wanted assignment."""

    ASSIGNED = "Assigned"                 # POSTed now (201)
    ALREADY_ASSIGNED = "AlreadyAssigned"  # found in place: nothing sent
    FAILED = "Failed"                     # the POST was refused


class Step(StrEnum):
    """What the command was doing when Graph answered an error; decides which permission the message names."""

    FIND_PRINCIPAL = "look up the principal"
    FIND_EXCHANGE = f"look up the {EXCHANGE_DISPLAY_NAME} service principal"
    READ_APP_ROLES = "read the principal's app role assignments"
    READ_DIRECTORY_ROLES = "read the principal's directory role assignments"
    ASSIGN_APP_ROLE = f"assign the {MANAGE_AS_APP} app role"
    ASSIGN_DIRECTORY_ROLE = "assign the directory role"


NEEDED_PERMISSION = {
    Step.FIND_PRINCIPAL: "the Graph permission Application.Read.All",
    Step.FIND_EXCHANGE: "the Graph permission Application.Read.All",
    Step.READ_APP_ROLES: "the Graph permission Application.Read.All",
    Step.READ_DIRECTORY_ROLES: "the Graph permission RoleManagement.Read.Directory (or RoleManagement.ReadWrite."
                               "Directory)",
    Step.ASSIGN_APP_ROLE: "the Graph permissions AppRoleAssignment.ReadWrite.All and Application.Read.All",
    Step.ASSIGN_DIRECTORY_ROLE: "the Graph permission RoleManagement.ReadWrite.Directory",
}


class GrantError(Exception):
    """The command cannot go on; the message is for the administrator and holds no token."""


# ---- pure: the plan ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The service principal that receives the assignments (the managed identity's, usually)."""

    id: str
    app_id: str
    display_name: str
    type: str

    @classmethod
    def from_graph(cls, item: Mapping[str, Any]) -> Principal:
        return cls(id=str(item.get("id", "")).lower(), app_id=str(item.get("appId", "")).lower(),
                   display_name=str(item.get("displayName") or ""), type=str(item.get("servicePrincipalType") or ""))


@dataclass(frozen=True)
class Grant:
    """One wanted assignment: where to POST it, what to send, and whether it is already in place."""

    kind: str  # "appRole" or "directoryRole"
    name: str
    step: Step
    path: str
    body: dict[str, Any]
    present: bool

    @property
    def label(self) -> str:
        if self.kind == "appRole":
            return f"{self.name} app role on {EXCHANGE_DISPLAY_NAME}"
        return f"Entra role {self.name} (directory-wide)"


@dataclass(frozen=True)
class GrantPlan:
    grants: tuple[Grant, ...]
    notes: tuple[str, ...] = ()

    @property
    def missing(self) -> tuple[Grant, ...]:
        return tuple(grant for grant in self.grants if not grant.present)


def is_guid(text: str) -> bool:
    return bool(_GUID.match(text.strip()))


def _same(a: Any, b: Any) -> bool:
    return str(a or "").lower() == str(b or "").lower()


def wanted_directory_role(read_only: bool) -> tuple[str, str]:
    """(role definition id, name): Global Reader for checks only, Exchange Administrator to remediate."""
    role_id = GLOBAL_READER if read_only else EXCHANGE_ADMINISTRATOR
    return role_id, ROLE_NAMES[role_id]


def manage_as_app_role_id(exchange_sp: Mapping[str, Any]) -> str:
    """The id of Exchange.ManageAsApp among the Exchange service principal's app roles (the tenant's answer wins)."""
    for role in exchange_sp.get("appRoles") or []:
        if isinstance(role, dict) and role.get("value") == MANAGE_AS_APP and role.get("isEnabled", True):
            return str(role.get("id") or MANAGE_AS_APP_ROLE_ID).lower()
    raise GrantError(f"The {EXCHANGE_DISPLAY_NAME} service principal in this tenant offers no enabled "
                     f"{MANAGE_AS_APP} app role; nothing was assigned.")


def plan_grants(*, principal_id: str, exchange_sp_id: str, app_role_id: str,
                app_role_assignments: Sequence[Mapping[str, Any]], role_assignments: Sequence[Mapping[str, Any]],
                read_only: bool) -> GrantPlan:
    """What to assign, from what the principal already holds. No I/O."""
    has_app_role = any(_same(a.get("resourceId"), exchange_sp_id) and _same(a.get("appRoleId"), app_role_id)
                       and _same(a.get("principalId") or principal_id, principal_id) for a in app_role_assignments)
    role_id, role_name = wanted_directory_role(read_only)
    mine = [a for a in role_assignments if _same(a.get("principalId"), principal_id)]
    wide = {str(a.get("roleDefinitionId", "")).lower() for a in mine if a.get("directoryScopeId") == DIRECTORY_SCOPE}
    notes = []
    scoped = sorted({str(a.get("directoryScopeId")) for a in mine if _same(a.get("roleDefinitionId"), role_id)
                     and a.get("directoryScopeId") != DIRECTORY_SCOPE})
    if scoped and role_id not in wide:
        notes.append(f"{role_name} is assigned only on scope {', '.join(scoped)}; Exchange Online needs it "
                     "directory-wide (\"/\").")
    if read_only and EXCHANGE_ADMINISTRATOR in wide:
        notes.append("The principal also holds Exchange Administrator, more than checks need; remove that "
                     "assignment if it only checks (least privilege).")
    if not read_only and GLOBAL_READER in wide:
        notes.append("The principal also holds Global Reader, which this app does not need next to Exchange "
                     "Administrator; remove it unless something else uses it.")
    if GLOBAL_ADMINISTRATOR in wide:
        notes.append("The principal holds Global Administrator, far more than this app needs; remove it.")
    grants = (
        Grant("appRole", MANAGE_AS_APP, Step.ASSIGN_APP_ROLE, f"/servicePrincipals/{principal_id}/appRoleAssignments",
              {"principalId": principal_id, "resourceId": exchange_sp_id, "appRoleId": app_role_id}, has_app_role),
        Grant("directoryRole", role_name, Step.ASSIGN_DIRECTORY_ROLE, "/roleManagement/directory/roleAssignments",
              {"@odata.type": "#microsoft.graph.unifiedRoleAssignment", "principalId": principal_id,
               "roleDefinitionId": role_id, "directoryScopeId": DIRECTORY_SCOPE}, role_id in wide),
    )
    return GrantPlan(grants, tuple(notes))


def explain(step: Step, error: GraphError, what: str | None = None) -> str:
    """The administrator's message for a Graph error during `step` (described as `what`, default the step):
    what failed, why, and which permission or role is needed."""
    what = what or str(step)
    said = f"{error.code}: {error.message}" if error.message else error.code
    ref = f" (request-id {error.request_id})" if error.request_id else ""
    if error.status == 403:
        return (f"Not allowed to {what}: Graph answered 403 ({said}){ref}. The caller needs "
                f"{NEEDED_PERMISSION[step]}; a signed-in administrator needs the Entra role {ADMIN_ROLES}.")
    if error.status == 401:
        return (f"Graph refused the token while trying to {what} (401 {said}){ref}. Sign in to the tenant that holds "
                "the identity (`az login --tenant <tenant id>`), and check that --cloud / GRAPH_ENDPOINT match it.")
    if error.status == 429:
        return (f"Graph is throttling requests ({said}). Wait a minute and run the command again; it only assigns "
                "what is still missing.")
    if error.status is None:
        return f"Could not reach Microsoft Graph to {what}: {said}."
    return f"Could not {what}: Graph answered {error.status} ({said}){ref}."


def is_duplicate(error: GraphError) -> bool:
    """Graph's answer to re-posting an existing assignment (400/409), e.g. after a concurrent run."""
    return error.status in (400, 409) and any(text in error.message.lower() for text in _DUPLICATE_TEXTS)


# ---- I/O: read, plan, assign --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantResult:
    grant: Grant
    outcome: Outcome
    message: str


@dataclass
class GrantReport:
    """What one run found and did; `exit_code` 0 only when both assignments are in place."""

    requested_id: str
    read_only: bool
    graph_url: str
    principal: Principal | None = None
    results: list[GrantResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def exit_code(self) -> int:
        ok = {Outcome.ASSIGNED, Outcome.ALREADY_ASSIGNED}
        return 0 if self.error is None and self.results and all(r.outcome in ok for r in self.results) else 2


def _read(step: Step, call: Any) -> Any:
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
        found = Principal.from_graph(client.get(f"/servicePrincipals(appId='{reference}')",
                                                {"$select": PRINCIPAL_SELECT}))
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


def find_exchange(client: GraphClient) -> tuple[str, str]:
    """(object id, Exchange.ManageAsApp role id) of the Office 365 Exchange Online service principal."""
    try:
        exchange = client.get(f"/servicePrincipals(appId='{EXCHANGE_APP_ID}')", {"$select": "id,appId,appRoles"})
    except GraphError as exc:
        if exc.status == 404:
            raise GrantError(f"The {EXCHANGE_DISPLAY_NAME} service principal ({EXCHANGE_APP_ID}) does not exist in "
                             "this tenant: it has no Exchange Online, or you signed in to another tenant. Nothing "
                             "was assigned.") from None
        raise GrantError(explain(Step.FIND_EXCHANGE, exc)) from None
    return str(exchange.get("id", "")).lower(), manage_as_app_role_id(exchange)


def grant_permissions(client: GraphClient, reference: str, *, read_only: bool) -> GrantReport:
    """Look up, plan, assign what is missing. Never raises for Graph or credential trouble: see `report.error`."""
    report = GrantReport(requested_id=reference, read_only=read_only, graph_url=client.base_url)
    try:
        principal = report.principal = find_principal(client, reference, report.notes)
        exchange_id, role_id = find_exchange(client)
        app_roles = _read(Step.READ_APP_ROLES, lambda: client.get_all(f"/servicePrincipals/{principal.id}"
                                                                      "/appRoleAssignments"))
        directory_roles = _read(Step.READ_DIRECTORY_ROLES, lambda: client.get_all(
            "/roleManagement/directory/roleAssignments", {"$filter": f"principalId eq '{principal.id}'"}))
    except (GrantError, GraphAuthError) as exc:
        report.error = str(exc)
        return report
    plan = plan_grants(principal_id=principal.id, exchange_sp_id=exchange_id, app_role_id=role_id,
                       app_role_assignments=app_roles, role_assignments=directory_roles, read_only=read_only)
    report.notes.extend(plan.notes)
    for grant in plan.grants:
        report.results.append(_apply(client, grant))
    failed = [r.message for r in report.results if r.outcome is Outcome.FAILED]
    if failed:
        report.error = "\n".join(failed)
    return report


def _apply(client: GraphClient, grant: Grant) -> GrantResult:
    if grant.present:
        return GrantResult(grant, Outcome.ALREADY_ASSIGNED, "already assigned")
    try:
        client.post(grant.path, grant.body)
    except GraphError as exc:
        if is_duplicate(exc):
            return GrantResult(grant, Outcome.ALREADY_ASSIGNED, "already assigned (by a concurrent change)")
        return GrantResult(grant, Outcome.FAILED, explain(grant.step, exc, f"assign the {grant.label}"))
    except GraphAuthError as exc:
        return GrantResult(grant, Outcome.FAILED, str(exc))
    return GrantResult(grant, Outcome.ASSIGNED, "assigned")


# ---- output -----------------------------------------------------------------------------------------------------


def render_text(report: GrantReport) -> str:
    principal = report.principal
    who = (f"{principal.display_name or '(no name)'} ({principal.type or 'service principal'}, object id "
           f"{principal.id}, app id {principal.app_id})" if principal else report.requested_id)
    lines = [f"Granting Exchange Online permissions to {who} via {report.graph_url}"]
    # A failure's explanation goes to stderr (run_grant_permissions); the line only says that it failed.
    lines += [f"  {r.grant.label}: {'FAILED' if r.outcome is Outcome.FAILED else r.message}" for r in report.results]
    lines += [f"Note: {note}" for note in report.notes]
    if report.exit_code == 0:
        lines.append("Both assignments are in place (exit code 0). New assignments can take a while to reach "
                     "Exchange Online; run `python -m shared check` to confirm.")
        lines.append(LEAST_PRIVILEGE_HINT)
    else:
        lines.append("Error: not every assignment is in place (exit code 2).")
    return "\n".join(lines)


def report_document(report: GrantReport) -> dict[str, Any]:
    principal = report.principal
    role_id, role_name = wanted_directory_role(report.read_only)
    return {
        "tool": "mailbox-audit-guard", "tool_version": __version__, "command": "grant-permissions",
        "graph_endpoint": report.graph_url, "requested_id": report.requested_id, "read_only": report.read_only,
        "principal": None if principal is None else {"id": principal.id, "app_id": principal.app_id,
                                                     "display_name": principal.display_name, "type": principal.type},
        "directory_role": {"id": role_id, "name": role_name},
        "assignments": [{"kind": r.grant.kind, "name": r.grant.name, "outcome": str(r.outcome), "message": r.message}
                        for r in report.results],
        "notes": list(report.notes),
        "status": "Ok" if report.exit_code == 0 else "Error", "exit_code": report.exit_code, "error": report.error,
    }


# ---- command line -------------------------------------------------------------------------------------------------


def add_grant_permissions_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `grant-permissions` on the CLI's subparsers (shared/cli.py calls this)."""
    parser = subparsers.add_parser(
        "grant-permissions", help="give the managed identity the Exchange Online permissions (Microsoft Graph)",
        description="Assign the Exchange.ManageAsApp app role and an Entra role to the identity, through Microsoft "
                    "Graph. Idempotent. Needs no EXO_* setting.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--principal-id", required=True, metavar="ID",
                        help="the identity's service principal object id (azd output IDENTITY_PRINCIPAL_ID); an app "
                             "(client) id is looked up too")
    parser.add_argument("--read-only", action="store_true",
                        help="assign Global Reader (checks only) instead of Exchange Administrator (remediation)")
    parser.add_argument("--cloud", choices=tuple(CLOUDS), default=None,
                        help="the Microsoft cloud, for the Graph host and sign-in (default: EXO_CLOUD, else global)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser


def default_credential(cloud: Cloud) -> TokenCredential:
    """The Azure CLI login first, then the DefaultAzureCredential chain (without the CLI a second time)."""
    from azure.identity import AzureCliCredential, ChainedTokenCredential, DefaultAzureCredential

    options = {} if cloud.name == "global" else {"authority": cloud.authority}
    return ChainedTokenCredential(AzureCliCredential(), DefaultAzureCredential(exclude_cli_credential=True, **options))


def run_grant_permissions(args: argparse.Namespace, *, credential: TokenCredential | None = None,
                          session: requests.Session | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The `grant-permissions` command: exit 0 when both assignments are in place, 2 otherwise.

    `credential`, `session` and `environ` are for tests; by default the Azure CLI / DefaultAzureCredential chain,
    a new requests session and os.environ."""
    with _logging_to_stderr(args.verbose):
        return _run(args, credential, session, os.environ if environ is None else environ)


def _run(args: argparse.Namespace, credential: TokenCredential | None, session: requests.Session | None,
         environ: Mapping[str, str]) -> int:
    reference = args.principal_id.strip().lower()
    cloud_name = (args.cloud or environ.get("EXO_CLOUD", "").strip() or "global").lower()
    cloud = CLOUDS.get(cloud_name)
    graph_url = (environ.get("GRAPH_ENDPOINT", "").strip() or (cloud.graph_url if cloud else "")).rstrip("/")
    report = GrantReport(requested_id=reference, read_only=args.read_only, graph_url=graph_url)
    if cloud is None:
        report.error = f"EXO_CLOUD: must be one of {', '.join(CLOUDS)} (or pass --cloud)"
    elif (problem := check_base_url(graph_url, allow_loopback_http=True)) is not None:
        report.error = f"GRAPH_ENDPOINT: {problem}"
    elif not is_guid(reference):
        report.error = ("--principal-id must be a GUID: the identity's service principal object id (azd output "
                        "IDENTITY_PRINCIPAL_ID) or its client id.")
    else:
        client = GraphClient(graph_url, credential or default_credential(cloud), cloud.graph_scope, session=session)
        report = grant_permissions(client, reference, read_only=args.read_only)
    if report.error:
        print(report.error, file=sys.stderr)
    if args.json:
        print(json.dumps(report_document(report), indent=2))
    else:
        print(render_text(report))
    return report.exit_code


@contextlib.contextmanager
def _logging_to_stderr(verbose: bool) -> Iterator[None]:
    """For one run: diagnostics to stderr with tokens masked; azure-identity's own warnings only with -v (our
    message already says what failed). Handlers and levels are restored afterwards."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root, ours, azure = logging.getLogger(), logging.getLogger("mailbox_audit_guard"), logging.getLogger("azure")
    saved = ours.level, azure.level
    root.addHandler(handler)
    ours.setLevel(logging.DEBUG if verbose else logging.WARNING)
    azure.setLevel(logging.INFO if verbose else logging.CRITICAL)
    try:
        yield
    finally:
        root.removeHandler(handler)
        ours.setLevel(saved[0])
        azure.setLevel(saved[1])
