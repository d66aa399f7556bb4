"""Microsoft Graph v1.0 stand-in: the service principals, app role assignments and directory role assignments
that `python -m shared grant-permissions` reads and writes (azure-functions.md §12).

`GraphState` is the data (pure apart from its own lists; callers hold `Emulator.lock`); `GraphApi` is the wire:
token checks, Graph permissions carried in the token's `roles`, Graph's error envelope, faults on listener
"graph" (their `cmdlet` names the operation, e.g. "rbacApplication-post-roleAssignments").
"""

from __future__ import annotations

import datetime
import re
import uuid
from typing import TYPE_CHECKING, Any

from .activity import DEFAULT_ACTIVITY_ROLES
from .audit_search import AuditSearchError
from .faults import RESPONSE_KINDS, respond
from .tokens import TokenError
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .emulator import Emulator

GRAPH_AUDIENCE = "https://graph.microsoft.com"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
MANAGE_AS_APP_ROLE_ID = "dc50a0fb-09a3-484d-be87-e023b12c6440"
EXCHANGE_APP_ROLES = (
    (MANAGE_AS_APP_ROLE_ID, "Exchange.ManageAsApp", "Manage Exchange As Application"),
    (
        "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
        "full_access_as_app",
        "Use Exchange Web Services with full access to all mailboxes",
    ),
    ("810c84a8-4a9e-49e6-bf7d-12d183f40d01", "Mail.Read", "Read mail in all mailboxes"),
)
# The Office 365 Management APIs (the audit feed's resource): its application permissions.
MANAGEMENT_APP_ID = "c5393580-f805-4401-95e8-94b7a6ef2fc2"
ACTIVITY_FEED_READ_ROLE_ID = "594c1fb6-4f81-4475-ae41-0c394909246c"
MANAGEMENT_APP_ROLES = (
    (ACTIVITY_FEED_READ_ROLE_ID, "ActivityFeed.Read", "Read activity data for your organization"),
    (
        "4807a72c-ad38-4250-94c9-4eabfe26cd55",
        "ActivityFeed.ReadDlp",
        "Read DLP policy events including detected sensitive data",
    ),
    (
        "e2cea78f-e743-4d8f-a16a-75b629a038ae",
        "ServiceHealth.Read",
        "Read service health information for your organization",
    ),
)
# Microsoft Graph itself as a resource: the application permissions `grant-permissions --search` assigns.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
AUDIT_QUERY_ROLE = "AuditLogsQuery.Read.All"
AUDIT_QUERY_ROLE_ID = "5e1e9171-754d-478c-812c-f1755a9a4c2d"
GRAPH_APP_ROLES = ((AUDIT_QUERY_ROLE_ID, AUDIT_QUERY_ROLE, "Read audit logs data from all services"),)
# The app's own Graph application permissions unless the scenario's principal lists them (`graph_roles`): none,
# as in a fresh deployment (`grant-permissions --search` adds AuditLogsQuery.Read.All).
DEFAULT_GRAPH_ROLES: tuple[str, ...] = ()
_AUDIT_QUERY = frozenset({AUDIT_QUERY_ROLE, "AuditLogsQuery-Exchange.Read.All"})
# Built-in Entra roles: display name -> template id (the roleDefinitionId of a built-in role in every tenant).
DIRECTORY_ROLES = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Exchange Recipient Administrator": "31392ffb-586c-42d1-9346-e59415a2cc4e",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Security Reader": "5d6b6bb7-de71-4623-b4af-96380a352509",
    "Security Administrator": "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "Compliance Administrator": "17315797-102d-40b4-93e0-432062caca18",
    "Compliance Data Administrator": "e6d1a23a-da11-4be4-9570-befc86d067a7",
    "Privileged Role Administrator": "e8611ab8-c189-46e8-94e1-60213ab1f814",
}
# What the caller's Graph token carries unless the scenario says otherwise: enough for grant-permissions.
DEFAULT_CALLER_PERMISSIONS = (
    "Application.Read.All",
    "AppRoleAssignment.ReadWrite.All",
    "RoleManagement.ReadWrite.Directory",
)
_READ_APPS = frozenset(
    {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
_READ_ROLES = frozenset(
    {
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "RoleManagement.ReadWrite.Directory",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
# operation (Graph reference page name) -> Graph permissions of which the token needs one
REQUIRED = {
    "servicePrincipal-get": _READ_APPS,
    "servicePrincipal-list": _READ_APPS,
    "servicePrincipal-list-appRoleAssignments": _READ_APPS,
    "servicePrincipal-post-appRoleAssignments": frozenset({"AppRoleAssignment.ReadWrite.All"}),
    "rbacApplication-list-roleAssignments": _READ_ROLES,
    "rbacApplication-post-roleAssignments": frozenset({"RoleManagement.ReadWrite.Directory"}),
    "rbacApplication-list-roleDefinitions": _READ_ROLES,
    "unifiedRoleDefinition-get": _READ_ROLES,
    "security-auditCoreRoot-post-auditLogQueries": _AUDIT_QUERY,
    "security-auditLogQuery-get": _AUDIT_QUERY,
    "security-auditLogQuery-list-records": _AUDIT_QUERY,
}
_AUDIT = r"^/(?P<version>v1\.0|beta)/security/auditLog/queries"
_ROUTES = (
    ("GET", re.compile(r"^/v1\.0/servicePrincipals\(appId='(?P<app_id>[^']*)'\)/?$", re.I), "servicePrincipal-get"),
    ("GET", re.compile(r"^/v1\.0/servicePrincipals/(?P<id>[^/]+)/?$", re.I), "servicePrincipal-get"),
    ("GET", re.compile(r"^/v1\.0/servicePrincipals/?$", re.I), "servicePrincipal-list"),
    (
        "GET",
        re.compile(r"^/v1\.0/servicePrincipals/(?P<id>[^/]+)/appRoleAssignments/?$", re.I),
        "servicePrincipal-list-appRoleAssignments",
    ),
    (
        "POST",
        re.compile(r"^/v1\.0/servicePrincipals/(?P<id>[^/]+)/appRoleAssignments/?$", re.I),
        "servicePrincipal-post-appRoleAssignments",
    ),
    (
        "GET",
        re.compile(r"^/v1\.0/roleManagement/directory/roleAssignments/?$", re.I),
        "rbacApplication-list-roleAssignments",
    ),
    (
        "POST",
        re.compile(r"^/v1\.0/roleManagement/directory/roleAssignments/?$", re.I),
        "rbacApplication-post-roleAssignments",
    ),
    (
        "GET",
        re.compile(r"^/v1\.0/roleManagement/directory/roleDefinitions/?$", re.I),
        "rbacApplication-list-roleDefinitions",
    ),
    (
        "GET",
        re.compile(r"^/v1\.0/roleManagement/directory/roleDefinitions/(?P<id>[^/]+)/?$", re.I),
        "unifiedRoleDefinition-get",
    ),
    ("POST", re.compile(_AUDIT + r"/?$", re.I), "security-auditCoreRoot-post-auditLogQueries"),
    ("GET", re.compile(_AUDIT + r"/(?P<id>[^/]+)/?$", re.I), "security-auditLogQuery-get"),
    ("GET", re.compile(_AUDIT + r"/(?P<id>[^/]+)/records/?$", re.I), "security-auditLogQuery-list-records"),
)
_CLAUSE = re.compile(r"^\s*(?P<name>[A-Za-z]+)\s+eq\s+'(?P<value>[^']*)'\s*$")
GRAPH_FAULT_KINDS = frozenset(RESPONSE_KINDS - {"garbage_token", "expire_cursor"})
# Status fault answers on listener "graph": the error code and message Graph sends with that status.
GRAPH_CODES = {
    400: "Request_BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Authorization_RequestDenied",
    404: "Request_ResourceNotFound",
    409: "Request_MultipleObjectsWithSameKeyValue",
    429: "TooManyRequests",
    500: "UnknownError",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
GRAPH_MESSAGES = {
    403: "Insufficient privileges to complete the operation.",
    429: "Too many requests. Please try again later.",
}
APP_ROLE_EXISTS = "Permission being assigned already exists on the object."
CONFLICT = "A conflicting object with one or more of the specified property values is present in the directory."


def _resource_sp(object_id: str, app_id: str, name: str, roles: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    """A Microsoft first-party resource service principal with its application permissions as app roles."""
    return {
        "id": object_id,
        "appId": app_id,
        "displayName": name,
        "servicePrincipalType": "Application",
        "accountEnabled": True,
        "appRoles": [
            {
                "id": role_id,
                "value": value,
                "displayName": display,
                "allowedMemberTypes": ["Application"],
                "isEnabled": True,
                "origin": "Application",
                "description": display,
            }
            for role_id, value, display in roles
        ],
    }


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """(operation, path parameters) for a Graph request, or None when no route matches."""
    for verb, pattern, operation in _ROUTES:
        if verb == method and (match := pattern.match(path)):
            return operation, match.groupdict()
    return None


def operation_for(method: str, path: str) -> str | None:
    found = route(method, path)
    return found[0] if found else None


def graph_envelope(code: str, message: str) -> dict[str, Any]:
    """Graph's error body: error.code, error.message and innerError with request id and date."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    request_id = str(uuid.uuid4())
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": now, "request-id": request_id, "client-request-id": request_id},
        }
    }


class GraphFailure(Exception):
    """A Graph error answer: HTTP status, Graph error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _not_found(object_id: str) -> GraphFailure:
    return GraphFailure(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not present.",
    )


def _bad_request(message: str) -> GraphFailure:
    return GraphFailure(400, "Request_BadRequest", message)


def parse_filter(text: str | None) -> list[tuple[str, str]]:
    """`a eq 'x' and b eq 'y'` -> [(a, x), (b, y)]; anything else is Graph's 400 for an unsupported filter."""
    if not text:
        return []
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.I):
        match = _CLAUSE.match(part)
        if not match:
            raise _bad_request(f"Invalid filter clause: '{text}' is not supported here (use: property eq 'value').")
        clauses.append((match.group("name"), match.group("value")))
    return clauses


def _matches(item: dict[str, Any], clauses: list[tuple[str, str]]) -> bool:
    return all(str(item.get(name, "")).lower() == value.lower() for name, value in clauses)


def _select(item: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return dict(item)
    wanted = {s.strip().lower() for s in select.split(",") if s.strip()}
    return {k: v for k, v in item.items() if k.lower() in wanted}


class GraphState:
    """Service principals, app role assignments, role definitions and directory role assignments of the tenant.

    The emulator's own identities (user- and system-assigned managed identity, the app registration) start with
    the assignments the scenario's `principal` describes; assigning to one of them also updates `principal`, so
    Exchange answers as it would once the grant has reached it.
    """

    def __init__(
        self, tenant_id: str, principal: dict[str, Any], settings: dict[str, Any], identities: list[dict[str, Any]]
    ) -> None:
        self.tenant_id = tenant_id
        self.principal = principal
        self.caller_permissions: list[str] = list(settings.get("caller_permissions", DEFAULT_CALLER_PERMISSIONS))
        self.exchange_sp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/servicePrincipal/{EXCHANGE_APP_ID}"))
        self.management_sp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/servicePrincipal/{MANAGEMENT_APP_ID}"))
        self.graph_sp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/servicePrincipal/{GRAPH_APP_ID}"))
        self.service_principals: list[dict[str, Any]] = [
            _resource_sp(self.exchange_sp_id, EXCHANGE_APP_ID, "Office 365 Exchange Online", EXCHANGE_APP_ROLES),
            _resource_sp(self.management_sp_id, MANAGEMENT_APP_ID, "Office 365 Management APIs", MANAGEMENT_APP_ROLES),
            _resource_sp(self.graph_sp_id, GRAPH_APP_ID, "Microsoft Graph", GRAPH_APP_ROLES),
        ]
        self.service_principals += [{**identity, "accountEnabled": True, "appRoles": []} for identity in identities]
        self.own_identity_ids = {identity["id"] for identity in identities}
        self.role_definitions = [
            {
                "id": role_id,
                "templateId": role_id,
                "displayName": name,
                "isBuiltIn": True,
                "isEnabled": True,
                "description": f"Built-in role {name}.",
            }
            for name, role_id in DIRECTORY_ROLES.items()
        ]
        self.app_role_assignments: list[dict[str, Any]] = []
        self.role_assignments: list[dict[str, Any]] = []
        for identity_id in self.own_identity_ids:
            if "Exchange.ManageAsApp" in (principal.get("roles") or []):
                self._add_app_role_assignment(identity_id, self.exchange_sp_id, MANAGE_AS_APP_ROLE_ID)
            if "ActivityFeed.Read" in principal.get("activity_roles", DEFAULT_ACTIVITY_ROLES):
                self._add_app_role_assignment(identity_id, self.management_sp_id, ACTIVITY_FEED_READ_ROLE_ID)
            if AUDIT_QUERY_ROLE in principal.get("graph_roles", DEFAULT_GRAPH_ROLES):
                self._add_app_role_assignment(identity_id, self.graph_sp_id, AUDIT_QUERY_ROLE_ID)
            for name in principal.get("directory_roles") or []:
                if name in DIRECTORY_ROLES:
                    self._add_role_assignment(identity_id, DIRECTORY_ROLES[name], "/")

    # ---- reads ----------------------------------------------------------------------------------------------

    def service_principal(self, object_id: str | None = None, app_id: str | None = None) -> dict[str, Any]:
        key, value = ("id", object_id) if object_id is not None else ("appId", app_id)
        for sp in self.service_principals:
            if str(sp.get(key, "")).lower() == str(value).lower():
                return sp
        raise _not_found(str(value))

    def list_service_principals(self, filter_text: str | None) -> list[dict[str, Any]]:
        clauses = parse_filter(filter_text)
        return [sp for sp in self.service_principals if _matches(sp, clauses)]

    def app_role_assignments_of(self, principal_id: str) -> list[dict[str, Any]]:
        self.service_principal(principal_id)
        return [a for a in self.app_role_assignments if a["principalId"].lower() == principal_id.lower()]

    def list_role_assignments(self, filter_text: str | None) -> list[dict[str, Any]]:
        clauses = parse_filter(filter_text)
        for name, _ in clauses:
            if name not in ("principalId", "roleDefinitionId", "directoryScopeId", "id"):
                raise _bad_request(f"Filter on property '{name}' is not supported.")
        return [a for a in self.role_assignments if _matches(a, clauses)]

    def role_definition(self, role_id: str) -> dict[str, Any]:
        for definition in self.role_definitions:
            if definition["id"].lower() == role_id.lower():
                return definition
        raise _not_found(role_id)

    # ---- writes ---------------------------------------------------------------------------------------------

    def assign_app_role(self, path_id: str, body: Any) -> dict[str, Any]:
        """POST /servicePrincipals/{id}/appRoleAssignments (id = the client, i.e. the principal)."""
        client = self.service_principal(path_id)
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("principalId", "resourceId", "appRoleId")
        ):
            raise _bad_request("principalId, resourceId and appRoleId are required.")
        if body["principalId"].lower() != client["id"].lower():
            raise _bad_request("The principalId must be the service principal in the request URL.")
        try:
            resource = self.service_principal(body["resourceId"])
        except GraphFailure:
            raise _bad_request(f"Invalid resourceId '{body['resourceId']}'.") from None
        if not any(role["id"].lower() == body["appRoleId"].lower() for role in resource["appRoles"]):
            raise _bad_request(f"Permission being assigned was not found on application '{resource['appId']}'.")
        if any(
            a["principalId"].lower() == client["id"].lower()
            and a["resourceId"].lower() == resource["id"].lower()
            and a["appRoleId"].lower() == body["appRoleId"].lower()
            for a in self.app_role_assignments
        ):
            raise _bad_request(APP_ROLE_EXISTS)
        assignment = self._add_app_role_assignment(client["id"], resource["id"], body["appRoleId"])
        if client["id"] in self.own_identity_ids:
            value = next(r["value"] for r in resource["appRoles"] if r["id"].lower() == body["appRoleId"].lower())
            # Tokens are per resource: a Management APIs role goes into the feed's tokens (`activity_roles`), a
            # Graph role into the app's Graph tokens (`graph_roles`), an Exchange role into Exchange's (`roles`).
            key = {self.management_sp_id: "activity_roles", self.graph_sp_id: "graph_roles"}.get(
                resource["id"], "roles"
            )
            default = {"activity_roles": DEFAULT_ACTIVITY_ROLES, "graph_roles": DEFAULT_GRAPH_ROLES}.get(key, ())
            roles = list(self.principal.get(key, default) or [])
            if value not in roles:  # a new list: the scenario's own lists stay untouched
                self.principal[key] = [*roles, value]
        return assignment

    def assign_directory_role(self, body: Any) -> dict[str, Any]:
        """POST /roleManagement/directory/roleAssignments."""
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("principalId", "roleDefinitionId", "directoryScopeId")
        ):
            raise _bad_request("principalId, roleDefinitionId and directoryScopeId are required.")
        try:
            principal = self.service_principal(body["principalId"])
        except GraphFailure:
            raise _bad_request(f"Invalid principalId '{body['principalId']}'.") from None
        definition = self.role_definition(body["roleDefinitionId"])
        scope = body["directoryScopeId"]
        if any(
            a["principalId"].lower() == principal["id"].lower()
            and a["roleDefinitionId"] == definition["id"]
            and a["directoryScopeId"] == scope
            for a in self.role_assignments
        ):
            raise _bad_request(CONFLICT)
        assignment = self._add_role_assignment(principal["id"], definition["id"], scope)
        if principal["id"] in self.own_identity_ids and scope == "/":
            names = list(self.principal.get("directory_roles") or [])
            if definition["displayName"] not in names:
                self.principal["directory_roles"] = [*names, definition["displayName"]]
        return assignment

    def _add_app_role_assignment(self, principal_id: str, resource_id: str, app_role_id: str) -> dict[str, Any]:
        principal = self.service_principal(principal_id)
        resource = self.service_principal(resource_id)
        assignment = {
            "id": uuid.uuid4().hex,
            "deletedDateTime": None,
            "appRoleId": app_role_id,
            "createdDateTime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "principalDisplayName": principal["displayName"],
            "principalId": principal["id"],
            "principalType": "ServicePrincipal",
            "resourceDisplayName": resource["displayName"],
            "resourceId": resource["id"],
        }
        self.app_role_assignments.append(assignment)
        return assignment

    def _add_role_assignment(self, principal_id: str, role_id: str, scope: str) -> dict[str, Any]:
        assignment = {
            "id": uuid.uuid4().hex,
            "principalId": principal_id,
            "roleDefinitionId": role_id,
            "directoryScopeId": scope,
        }
        self.role_assignments.append(assignment)
        return assignment


class GraphApi:
    """Handles `/v1.0/...` on the https "graph" listener for one Emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def handle(self, req: Request) -> Response:
        found = route(req.method, req.path)
        if found is None:
            return json_response(
                400, graph_envelope("BadRequest", f"Resource not found for the segment in '{req.method} {req.path}'.")
            )
        operation, params = found
        fault = self.emu.faults.fire(GRAPH_FAULT_KINDS, listener="graph", cmdlet=operation, path=req.path)
        proceed = lambda: self._process(req, operation, params)  # noqa: E731
        return respond(fault, "graph", proceed, self.emu.wait) if fault else proceed()

    def _process(self, req: Request, operation: str, params: dict[str, str]) -> Response:
        denied = self._authorize(req, operation)
        if denied is not None:
            return denied
        if operation.startswith("security-"):
            return self._audit(req, operation, params)
        graph = self.emu.graph
        base = f"{self.emu.graph_url}/v1.0"
        try:
            with self.emu.lock:
                if operation == "servicePrincipal-get":
                    sp = graph.service_principal(params.get("id"), params.get("app_id"))
                    return self._ok(
                        f"{base}/$metadata#servicePrincipals/$entity", _select(sp, req.query.get("$select"))
                    )
                if operation == "servicePrincipal-list":
                    rows = graph.list_service_principals(req.query.get("$filter"))
                    return self._list(f"{base}/$metadata#servicePrincipals", rows, req.query.get("$select"))
                if operation == "servicePrincipal-list-appRoleAssignments":
                    rows = graph.app_role_assignments_of(params["id"])
                    return self._list(
                        f"{base}/$metadata#servicePrincipals('{params['id']}')/appRoleAssignments",
                        rows,
                        req.query.get("$select"),
                    )
                if operation == "servicePrincipal-post-appRoleAssignments":
                    created = graph.assign_app_role(params["id"], req.json())
                    return self._ok(
                        f"{base}/$metadata#servicePrincipals('{params['id']}')/appRoleAssignments/$entity",
                        created,
                        status=201,
                    )
                if operation == "rbacApplication-list-roleAssignments":
                    rows = graph.list_role_assignments(req.query.get("$filter"))
                    return self._list(
                        f"{base}/$metadata#roleManagement/directory/roleAssignments", rows, req.query.get("$select")
                    )
                if operation == "rbacApplication-post-roleAssignments":
                    created = graph.assign_directory_role(req.json())
                    return self._ok(
                        f"{base}/$metadata#roleManagement/directory/roleAssignments/$entity", created, status=201
                    )
                if operation == "rbacApplication-list-roleDefinitions":
                    return self._list(
                        f"{base}/$metadata#roleManagement/directory/roleDefinitions",
                        graph.role_definitions,
                        req.query.get("$select"),
                    )
                definition = graph.role_definition(params["id"])
                return self._ok(f"{base}/$metadata#roleManagement/directory/roleDefinitions/$entity", definition)
        except GraphFailure as failure:
            return json_response(failure.status, graph_envelope(failure.code, failure.message))

    def _audit(self, req: Request, operation: str, params: dict[str, str]) -> Response:
        """The audit log query API (emulator/audit_search.py)."""
        search = self.emu.audit_search
        base = f"{self.emu.graph_url}/{params['version']}"
        try:
            if operation == "security-auditCoreRoot-post-auditLogQueries":
                created = search.create(params["version"], req.json())
                return self._ok(f"{base}/$metadata#security/auditLog/queries/$entity", created, status=201)
            if operation == "security-auditLogQuery-get":
                return self._ok(f"{base}/$metadata#security/auditLog/queries/$entity", search.get(params["id"]))
            rows, next_link = search.records(params["id"], req.query.get("$skiptoken"))
            body: dict[str, Any] = {
                "@odata.context": f"{base}/$metadata#security/auditLog/queries('{params['id']}')/records",
                "value": rows,
            }
            if next_link:
                body["@odata.nextLink"] = next_link
            return json_response(200, body)
        except AuditSearchError as failure:
            return json_response(failure.status, graph_envelope(failure.code, failure.message))

    def _authorize(self, req: Request, operation: str) -> Response | None:
        """401 for a missing or unusable token, 403 when its `roles` hold none of the permissions needed."""
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._unauthorized("Access token is empty.")
        try:
            claims = self.emu.issuer.verify(token.strip())
        except TokenError as exc:
            return self._unauthorized(f"Access token validation failure. {exc}")
        if claims.get("aud") != GRAPH_AUDIENCE:
            return self._unauthorized("Access token validation failure. Invalid audience.")
        if str(claims.get("tid", "")).lower() != self.emu.tenant_id.lower():
            return self._unauthorized("Access token validation failure. The token is for another tenant.")
        if not set(claims.get("roles") or []) & REQUIRED[operation]:
            return json_response(
                403, graph_envelope("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
            )
        return None

    @staticmethod
    def _unauthorized(message: str) -> Response:
        return json_response(
            401,
            graph_envelope("InvalidAuthenticationToken", message),
            {
                "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.'
                'com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-'
                '000000000000"'
            },
        )

    @staticmethod
    def _ok(context: str, item: dict[str, Any], status: int = 200) -> Response:
        return json_response(
            status,
            {"@odata.context": context, **item},
            content_type="application/json;odata.metadata=minimal;odata.streaming=true;"
            "IEEE754Compatible=false;charset=utf-8",
        )

    @staticmethod
    def _list(context: str, rows: list[dict[str, Any]], select: str | None) -> Response:
        return json_response(
            200,
            {"@odata.context": context, "value": [_select(r, select) for r in rows]},
            content_type="application/json;odata.metadata=minimal;odata.streaming=true;"
            "IEEE754Compatible=false;charset=utf-8",
        )
