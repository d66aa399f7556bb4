"""grant-permissions, the pure part: what the identity needs, what to assign, what a run found, what errors mean.

Three assignments and two optional ones (exchange-admin-api.md §4.1, azure-functions.md §12), all on the
identity's service principal:
1. the app role `Exchange.ManageAsApp` of the Office 365 Exchange Online service principal;
2. the Entra role Exchange Administrator (remediation) or, with --read-only, Global Reader, directory-wide;
3. the app role `ActivityFeed.Read` (application permission) of the Office 365 Management APIs service principal:
   the activity watch reads the audit feed with it (read-only, so --read-only grants it too);
4. with --search, the app role `AuditLogsQuery.Read.All` (application permission) of Microsoft Graph: the
   investigation search (`python -m shared search`) queries the audit log with it (activity-feed.md §4.2).
5. with --retention-policy only, and without --exchange-roles: the Entra role Compliance Data Administrator,
   directory-wide, for the opt-in audit-retention-policy control (activity-feed.md §6.4). Reading audit retention
   policies needs the Purview Organization Configuration role, which also creates, changes and deletes them;
   Compliance Data Administrator carries it with less besides than Compliance Administrator, so it serves checks
   and remediation alike (Compliance Administrator, if already held, counts as in place). With --exchange-roles a
   Security & Compliance role group holding only that Purview role replaces it (shared/graph/role_groups.py).

No I/O here: shared/graph/grant.py reads Graph and posts what `plan_grants` finds missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.graph.errors import GraphError
from shared.graph.role_groups_plan import RoleGroupReport

EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
EXCHANGE_DISPLAY_NAME = "Office 365 Exchange Online"
MANAGE_AS_APP = "Exchange.ManageAsApp"
MANAGE_AS_APP_ROLE_ID = "dc50a0fb-09a3-484d-be87-e023b12c6440"
MANAGEMENT_APP_ID = "c5393580-f805-4401-95e8-94b7a6ef2fc2"
MANAGEMENT_DISPLAY_NAME = "Office 365 Management APIs"
ACTIVITY_FEED_READ = "ActivityFeed.Read"
ACTIVITY_FEED_READ_ROLE_ID = "594c1fb6-4f81-4475-ae41-0c394909246c"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_DISPLAY_NAME = "Microsoft Graph"
AUDIT_LOGS_QUERY = "AuditLogsQuery.Read.All"
AUDIT_LOGS_QUERY_ROLE_ID = "5e1e9171-754d-478c-812c-f1755a9a4c2d"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
COMPLIANCE_DATA_ADMINISTRATOR = "e6d1a23a-da11-4be4-9570-befc86d067a7"
COMPLIANCE_ADMINISTRATOR = "17315797-102d-40b4-93e0-432062caca18"
RETENTION_ROLE_WARNING = (
    "Compliance Data Administrator (for audit-retention-policy) is broad: its Purview Organization Configuration role "
    "can also create, change and delete audit retention policies (Purview offers no read-only role for them). Give "
    "it only if you run that check (AUDIT_RETENTION_POLICY_CHECK=true)."
)
ROLE_NAMES = {
    COMPLIANCE_DATA_ADMINISTRATOR: "Compliance Data Administrator",
    COMPLIANCE_ADMINISTRATOR: "Compliance Administrator",
    EXCHANGE_ADMINISTRATOR: "Exchange Administrator",
    GLOBAL_READER: "Global Reader",
    GLOBAL_ADMINISTRATOR: "Global Administrator",
}
DIRECTORY_SCOPE = "/"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DUPLICATE_TEXTS = ("already exists", "conflicting object")
ADMIN_ROLES = "Privileged Role Administrator (or Global Administrator)"


class Outcome(StrEnum):
    """What happened to one wanted assignment."""

    ASSIGNED = "Assigned"  # POSTed now (201)
    ALREADY_ASSIGNED = "AlreadyAssigned"  # found in place: nothing sent
    PLANNED = "Planned"  # --dry-run: would be POSTed
    FAILED = "Failed"  # the POST was refused


class Step(StrEnum):
    """What the command was doing when Graph answered an error; decides which permission the message names."""

    FIND_PRINCIPAL = "look up the principal"
    FIND_EXCHANGE = f"look up the {EXCHANGE_DISPLAY_NAME} service principal"
    FIND_MANAGEMENT = f"look up the {MANAGEMENT_DISPLAY_NAME} service principal"
    FIND_GRAPH = f"look up the {GRAPH_DISPLAY_NAME} service principal"
    READ_APP_ROLES = "read the principal's app role assignments"
    READ_DIRECTORY_ROLES = "read the principal's directory role assignments"
    ASSIGN_APP_ROLE = "assign an app role"
    ASSIGN_DIRECTORY_ROLE = "assign the directory role"


NEEDED_PERMISSION = {
    Step.FIND_PRINCIPAL: "the Graph permission Application.Read.All",
    Step.FIND_EXCHANGE: "the Graph permission Application.Read.All",
    Step.FIND_MANAGEMENT: "the Graph permission Application.Read.All",
    Step.FIND_GRAPH: "the Graph permission Application.Read.All",
    Step.READ_APP_ROLES: "the Graph permission Application.Read.All",
    Step.READ_DIRECTORY_ROLES: "the Graph permission RoleManagement.Read.Directory (or RoleManagement.ReadWrite."
    "Directory)",
    Step.ASSIGN_APP_ROLE: "the Graph permissions AppRoleAssignment.ReadWrite.All and Application.Read.All",
    Step.ASSIGN_DIRECTORY_ROLE: "the Graph permission RoleManagement.ReadWrite.Directory",
}


class GrantError(Exception):
    """The command cannot go on; the message is for the administrator and holds no token."""


# ---- the plan ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The service principal that receives the assignments (the managed identity's, usually)."""

    id: str
    app_id: str
    display_name: str
    type: str

    @classmethod
    def from_graph(cls, item: Mapping[str, Any]) -> Principal:
        return cls(
            id=str(item.get("id", "")).lower(),
            app_id=str(item.get("appId", "")).lower(),
            display_name=str(item.get("displayName") or ""),
            type=str(item.get("servicePrincipalType") or ""),
        )


@dataclass(frozen=True)
class Grant:
    """One wanted assignment: where to POST it, what to send, and whether it is already in place."""

    kind: str  # "appRole" or "directoryRole"
    name: str
    step: Step
    path: str
    body: dict[str, Any]
    present: bool
    resource: str = EXCHANGE_DISPLAY_NAME  # an app role's resource (its service principal's display name)

    @property
    def label(self) -> str:
        if self.kind == "appRole":
            return f"{self.name} app role on {self.resource}"
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


def app_role_id(resource_sp: Mapping[str, Any], value: str, default_id: str, resource_name: str) -> str:
    """The id of the app role `value` among a resource service principal's app roles (the tenant's answer wins)."""
    for role in resource_sp.get("appRoles") or []:
        if isinstance(role, dict) and role.get("value") == value and role.get("isEnabled", True):
            if "Application" not in (role.get("allowedMemberTypes") or ["Application"]):
                continue  # a delegated-only role cannot be given to a service principal
            return str(role.get("id") or default_id).lower()
    raise GrantError(
        f"The {resource_name} service principal in this tenant offers no enabled {value} app role (application "
        "permission); nothing was assigned."
    )


def manage_as_app_role_id(exchange_sp: Mapping[str, Any]) -> str:
    """The id of Exchange.ManageAsApp among the Exchange service principal's app roles."""
    return app_role_id(exchange_sp, MANAGE_AS_APP, MANAGE_AS_APP_ROLE_ID, EXCHANGE_DISPLAY_NAME)


def activity_feed_read_role_id(management_sp: Mapping[str, Any]) -> str:
    """The id of ActivityFeed.Read among the Office 365 Management APIs service principal's app roles."""
    return app_role_id(management_sp, ACTIVITY_FEED_READ, ACTIVITY_FEED_READ_ROLE_ID, MANAGEMENT_DISPLAY_NAME)


def audit_logs_query_role_id(graph_sp: Mapping[str, Any]) -> str:
    """The id of AuditLogsQuery.Read.All among the Microsoft Graph service principal's app roles."""
    return app_role_id(graph_sp, AUDIT_LOGS_QUERY, AUDIT_LOGS_QUERY_ROLE_ID, GRAPH_DISPLAY_NAME)


def _holds_app_role(
    assignments: Sequence[Mapping[str, Any]], principal_id: str, resource_id: str, role_id: str
) -> bool:
    return any(
        _same(a.get("resourceId"), resource_id)
        and _same(a.get("appRoleId"), role_id)
        and _same(a.get("principalId") or principal_id, principal_id)
        for a in assignments
    )


def plan_grants(
    *,
    principal_id: str,
    exchange_sp_id: str,
    app_role_id: str,
    management_sp_id: str,
    activity_role_id: str,
    app_role_assignments: Sequence[Mapping[str, Any]],
    role_assignments: Sequence[Mapping[str, Any]],
    read_only: bool,
    graph_sp_id: str | None = None,
    audit_query_role_id: str | None = None,
    retention_policy: bool = False,
    directory_role: bool = True,
) -> GrantPlan:
    """What to assign, from what the principal already holds (`retention_policy`: also the compliance role).
    `directory_role` False (--exchange-roles): no Entra role for Exchange, role groups give the access instead; a
    directory role it still holds is reported."""
    has_app_role = _holds_app_role(app_role_assignments, principal_id, exchange_sp_id, app_role_id)
    has_activity_role = _holds_app_role(app_role_assignments, principal_id, management_sp_id, activity_role_id)
    role_id, role_name = wanted_directory_role(read_only)
    mine = [a for a in role_assignments if _same(a.get("principalId"), principal_id)]
    wide = {str(a.get("roleDefinitionId", "")).lower() for a in mine if a.get("directoryScopeId") == DIRECTORY_SCOPE}
    notes = []
    scoped = sorted(
        {
            str(a.get("directoryScopeId"))
            for a in mine
            if _same(a.get("roleDefinitionId"), role_id) and a.get("directoryScopeId") != DIRECTORY_SCOPE
        }
    )
    if scoped and role_id not in wide:
        notes.append(
            f'{role_name} is assigned only on scope {", ".join(scoped)}; Exchange Online needs it directory-wide ("/").'
        )
    if read_only and EXCHANGE_ADMINISTRATOR in wide:
        notes.append(
            "The principal also holds Exchange Administrator, more than checks need; remove that "
            "assignment if it only checks (least privilege)."
        )
    if not read_only and GLOBAL_READER in wide:
        notes.append(
            "The principal also holds Global Reader, which this app does not need next to Exchange "
            "Administrator; remove it unless something else uses it."
        )
    if not directory_role:
        held: tuple[str, ...] = (EXCHANGE_ADMINISTRATOR, GLOBAL_READER)
        if retention_policy:
            held += (COMPLIANCE_DATA_ADMINISTRATOR, COMPLIANCE_ADMINISTRATOR)
        notes = [
            f"The principal also holds the Entra role {ROLE_NAMES[r]}, broader than the role groups; remove that "
            "assignment once the role groups work (least privilege)."
            for r in held
            if r in wide
        ]
    if GLOBAL_ADMINISTRATOR in wide:
        notes.append("The principal holds Global Administrator, far more than this app needs; remove it.")
    grants: tuple[Grant, ...] = (
        Grant(
            "appRole",
            MANAGE_AS_APP,
            Step.ASSIGN_APP_ROLE,
            f"/servicePrincipals/{principal_id}/appRoleAssignments",
            {"principalId": principal_id, "resourceId": exchange_sp_id, "appRoleId": app_role_id},
            has_app_role,
        ),
        *(
            ()
            if not directory_role
            else (
                Grant(
                    "directoryRole",
                    role_name,
                    Step.ASSIGN_DIRECTORY_ROLE,
                    "/roleManagement/directory/roleAssignments",
                    {
                        "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
                        "principalId": principal_id,
                        "roleDefinitionId": role_id,
                        "directoryScopeId": DIRECTORY_SCOPE,
                    },
                    role_id in wide,
                ),
            )
        ),
        Grant(
            "appRole",
            ACTIVITY_FEED_READ,
            Step.ASSIGN_APP_ROLE,
            f"/servicePrincipals/{principal_id}/appRoleAssignments",
            {"principalId": principal_id, "resourceId": management_sp_id, "appRoleId": activity_role_id},
            has_activity_role,
            MANAGEMENT_DISPLAY_NAME,
        ),
    )
    if graph_sp_id is not None and audit_query_role_id is not None:  # --search
        grants += (
            Grant(
                "appRole",
                AUDIT_LOGS_QUERY,
                Step.ASSIGN_APP_ROLE,
                f"/servicePrincipals/{principal_id}/appRoleAssignments",
                {"principalId": principal_id, "resourceId": graph_sp_id, "appRoleId": audit_query_role_id},
                _holds_app_role(app_role_assignments, principal_id, graph_sp_id, audit_query_role_id),
                GRAPH_DISPLAY_NAME,
            ),
        )
    if retention_policy and directory_role:  # with role groups, the Security & Compliance group gives it instead
        notes.append(RETENTION_ROLE_WARNING)
        grants += (
            Grant(
                "directoryRole",
                ROLE_NAMES[COMPLIANCE_DATA_ADMINISTRATOR],
                Step.ASSIGN_DIRECTORY_ROLE,
                "/roleManagement/directory/roleAssignments",
                {
                    "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
                    "principalId": principal_id,
                    "roleDefinitionId": COMPLIANCE_DATA_ADMINISTRATOR,
                    "directoryScopeId": DIRECTORY_SCOPE,
                },
                bool(wide & {COMPLIANCE_DATA_ADMINISTRATOR, COMPLIANCE_ADMINISTRATOR}),
            ),
        )
    return GrantPlan(grants, tuple(notes))


# ---- what Graph's errors mean -------------------------------------------------------------------------------------


def explain(step: Step, error: GraphError, what: str | None = None) -> str:
    """The administrator's message for a Graph error during `step` (described as `what`, default the step):
    what failed, why, and which permission or role is needed."""
    what = what or str(step)
    said = f"{error.code}: {error.message}" if error.message else error.code
    ref = f" (request-id {error.request_id})" if error.request_id else ""
    if error.status == 403:
        return (
            f"Not allowed to {what}: Graph answered 403 ({said}){ref}. The caller needs "
            f"{NEEDED_PERMISSION[step]}; a signed-in administrator needs the Entra role {ADMIN_ROLES}."
        )
    if error.status == 401:
        return (
            f"Graph refused the token while trying to {what} (401 {said}){ref}. Sign in to the tenant that holds "
            "the identity (`az login --tenant <tenant id>`), and check that --cloud / GRAPH_ENDPOINT match it."
        )
    if error.status == 429:
        return (
            f"Graph is throttling requests ({said}). Wait a minute and run the command again; it only assigns "
            "what is still missing."
        )
    if error.status is None:
        return f"Could not reach Microsoft Graph to {what}: {said}."
    return f"Could not {what}: Graph answered {error.status} ({said}){ref}."


def is_duplicate(error: GraphError) -> bool:
    """Graph's answer to re-posting an existing assignment (400/409), e.g. after a concurrent run."""
    return error.status in (400, 409) and any(text in error.message.lower() for text in _DUPLICATE_TEXTS)


# ---- what a run found and did ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantResult:
    grant: Grant
    outcome: Outcome
    message: str


@dataclass
class GrantReport:
    """What one run found and did; `exit_code` 0 only when every assignment is in place."""

    requested_id: str
    read_only: bool
    graph_url: str
    retention_policy: bool = False
    principal: Principal | None = None
    search: bool = False  # --search: AuditLogsQuery.Read.All on Microsoft Graph too
    directory_role: bool = True  # False with --exchange-roles: role groups instead of an Entra role
    dry_run: bool = False
    exchange: RoleGroupReport | None = None  # --exchange-roles: what the Exchange part found and did
    compliance: RoleGroupReport | None = None  # --exchange-roles --retention-policy: the Security & Compliance part
    results: list[GrantResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    tenant_id: str | None = None  # --tenant: the customer tenant this run prepares (multi-tenant app)
    consent_url: str | None = None  # --tenant: where the customer's administrator consents to the app

    @property
    def all_errors(self) -> str | None:
        """The Graph part's error and the role group parts', for stderr."""
        texts = [self.error, *(part.error for part in self.role_groups)]
        return "\n".join(t for t in texts if t) or None

    @property
    def role_groups(self) -> tuple[RoleGroupReport, ...]:
        return tuple(part for part in (self.exchange, self.compliance) if part is not None)

    @property
    def exit_code(self) -> int:
        ok = {Outcome.ASSIGNED, Outcome.ALREADY_ASSIGNED, Outcome.PLANNED}
        graph_ok = self.error is None and self.results and all(r.outcome in ok for r in self.results)
        return 0 if graph_ok and all(part.ok for part in self.role_groups) else 2
