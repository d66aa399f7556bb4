"""The Security & Compliance (IPPS) admin API on the wire: the global host's redirect, the audit retention policy
cmdlets, the token audience, the Purview role check and the Audit (Premium) licence gate (activity-feed.md §6), and
the side's own RBAC for apps (service principal pointers and role groups, emulator/rbac.py's second store) that a
signed-in administrator manages with the grant's cmdlets."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from . import errors
from .exchange import CONTENT_TYPE, INVOKE_PATH, Projection, caller_problem, error_response, unauthorized
from .faults import RESPONSE_KINDS, respond
from .rbac import ORGANIZATION_CONFIGURATION, ROLE_MANAGEMENT, compliance_cmdlets
from .tokens import TokenError
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .emulator import Emulator

COMPLIANCE_AUDIENCES = frozenset(
    {"https://ps.compliance.protection.outlook.com", "https://ps.compliance.protection.office365.us"}
)
GLOBAL_HOST = "ps.compliance.protection.outlook.com"
# Entra roles carrying the Purview Organization Configuration role (read and write audit retention policies).
POLICY_ROLES = frozenset({"compliance administrator", "compliance data administrator", "global administrator"})
# Entra roles carrying Purview Role Management (the grant's cmdlets): Global Administrator, through the Purview role
# group Organization Management [I].
ROLE_MANAGEMENT_ROLES = frozenset({"global administrator"})
DURATION_DAYS = {
    "SevenDays": 7,
    "OneMonth": 30,
    "ThreeMonths": 90,
    "SixMonths": 180,
    "NineMonths": 270,
    "TwelveMonths": 365,
    "ThreeYears": 1095,
    "FiveYears": 1825,
    "SevenYears": 2555,
    "TenYears": 3650,
}
POLICY_CMDLETS = (
    "Get-UnifiedAuditLogRetentionPolicy",
    "New-UnifiedAuditLogRetentionPolicy",
    "Set-UnifiedAuditLogRetentionPolicy",
)
TASK_ERROR = "Microsoft.Exchange.Configuration.Tasks.TaskException"
LICENCE_TEXT = (
    "Your organization doesn't have the appropriate license to create an audit log retention policy with a "
    "retention duration longer than 180 days. Audit (Premium) is required."
)
DEFAULTS: dict[str, Any] = {
    "policies": [],
    "audit_premium": True,
    "region": "eur03b",
    "redirect_location": None,
    "rbac": {},
}
RBAC_KEYS = frozenset({"service_principals", "role_groups"})


def compliance_settings(raw: Any) -> dict[str, Any]:
    """The scenario's `compliance` block with defaults; policies get Enabled true and empty filters if missing;
    `rbac`: the side's own `service_principals` and `role_groups` (as in `exchange_rbac`)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or set(raw) - set(DEFAULTS):
        raise ValueError(f"compliance must be an object with keys among {', '.join(DEFAULTS)}")
    rbac = raw.get("rbac") or {}
    if not isinstance(rbac, dict) or set(rbac) - RBAC_KEYS or not all(isinstance(v, list) for v in rbac.values()):
        raise ValueError("compliance.rbac must be an object with the lists service_principals and role_groups")
    settings = {**DEFAULTS, **raw}
    settings["policies"] = [
        {"Enabled": True, "RecordTypes": [], "Operations": [], "UserIds": [], "Description": "", **policy}
        for policy in settings["policies"] or []
    ]
    return settings


def forbidden(cmdlet: str) -> Response:
    """IPPS's 403 is JSON `Forbidden` naming the cmdlet, not the NUL bytes of Exchange (§6.1)."""
    return json_response(
        403,
        {"error": {"code": "Forbidden", "message": f"The user is not allowed to run the cmdlet '{cmdlet}'."}},
        {"X-ExceptionType": "UnauthorizedAccessException"},
    )


class ComplianceApi:
    """Handles POST /adminapi/beta/{tenant}/InvokeCommand on the "compliance" listener. State: emu.compliance (a
    dict: policies, audit_premium, region, redirect_location) and emu.compliance_rbac, guarded by emu.lock."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.rbac_cmdlets = compliance_cmdlets(emulator.compliance_rbac)
        self.cmdlets = {name.lower(): name for name in (*POLICY_CMDLETS, *self.rbac_cmdlets)}

    def handle(self, req: Request) -> Response | None:
        match = INVOKE_PATH.match(req.path)
        if not match or req.method != "POST":
            return None
        host = req.host.split(":")[0].lower()
        if host == GLOBAL_HOST:  # the global host sends every call to the tenant's regional one (§6.1)
            with self.emu.lock:
                region, location = self.emu.compliance["region"], self.emu.compliance["redirect_location"]
            target = location or f"https://{region}.{GLOBAL_HOST}"
            query = f"?{req.raw_query}" if req.raw_query else ""
            return Response(302, b"", {"Location": f"{target}{req.path}{query}"})
        body = req.json()
        cmdlet_input = body.get("CmdletInput") if isinstance(body, dict) else None
        raw_name = cmdlet_input.get("CmdletName") if isinstance(cmdlet_input, dict) else None
        cmdlet = self.cmdlets.get(raw_name.lower()) if isinstance(raw_name, str) else None
        fault = self.emu.faults.fire(
            RESPONSE_KINDS - {"garbage_token", "expire_cursor"}, listener="compliance", cmdlet=cmdlet or raw_name
        )

        def proceed() -> Response:
            return self._process(req, match.group("tenant"), cmdlet_input, raw_name, cmdlet)

        return respond(fault, "exchange", proceed, self.emu.wait, real=True) if fault else proceed()

    def _authenticate(self, req: Request, path_tenant: str) -> tuple[str | None, dict[str, Any]]:
        """(None, the claims) when the bearer token is acceptable, else (the reason for the 401, {})."""
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "The request has no bearer token.", {}
        try:
            claims = self.emu.issuer.verify(token.strip())
        except TokenError as exc:
            return str(exc), {}
        return self._check_claims(claims, path_tenant), claims

    def _check_claims(self, claims: dict[str, Any], path_tenant: str) -> str | None:
        if claims.get("aud") not in COMPLIANCE_AUDIENCES:
            return f"The token audience '{claims.get('aud')}' is not valid for this resource."
        if str(claims.get("tid", "")).lower() != self.emu.tenant_id.lower():
            return "The token was issued for a different tenant."
        if path_tenant.lower() not in {self.emu.tenant_id.lower(), self.emu.organization.lower()}:
            return f"The tenant '{path_tenant}' in the URL is not the token's tenant."
        return caller_problem(claims)

    def _allowed(self, claims: dict[str, Any], cmdlet: str) -> bool:
        """A retention cmdlet needs Purview Organization Configuration, the grant's cmdlets Role Management: through
        an Entra role (the administrator's `wids`, the app's `directory_roles`) or, for an app, the roles of this
        side's role groups its pointer is a member of."""
        policy = cmdlet in POLICY_CMDLETS
        user = claims.get("idtyp") == "user"
        with self.emu.lock:
            entra = claims.get("wids") if user else self.emu.tenant.principal.get("directory_roles")
            if {str(r).lower() for r in entra or []} & (POLICY_ROLES if policy else ROLE_MANAGEMENT_ROLES):
                return True
            held = set() if user else self.emu.compliance_rbac.roles_of_app(str(claims.get("appid", "")))
        return (ORGANIZATION_CONFIGURATION if policy else ROLE_MANAGEMENT) in held

    def _process(self, req: Request, tenant: str, cmdlet_input: Any, raw_name: Any, cmdlet: str | None) -> Response:
        reason, claims = self._authenticate(req, tenant)
        if reason:
            return unauthorized(reason)
        if not isinstance(raw_name, str) or not isinstance(cmdlet_input.get("Parameters", {}), dict):
            return error_response(errors.bad_request("The request body must carry CmdletInput.Parameters."), True)
        if cmdlet is None or not self._allowed(claims, cmdlet):
            return forbidden(raw_name)
        parameters = cmdlet_input.get("Parameters") or {}
        try:
            with self.emu.lock:
                rows = self._invoke(cmdlet, parameters)
        except errors.EmulatedError as exc:
            return error_response(exc, True)
        select = [s.strip() for s in req.query["$select"].split(",") if s.strip()] if "$select" in req.query else None
        projection = Projection(select)
        payload = {
            "@odata.context": f"https://{req.host}/adminapi/beta/{tenant}/$metadata#Collection(Exchange.GenericHashTable)",
            "adminapi.warnings@odata.type": "#Collection(String)",
            "@adminapi.warnings": [],
            "value": [projection(row) for row in rows],
        }
        return Response(
            200, json.dumps(payload).encode(), {"Content-Type": CONTENT_TYPE, "request-id": str(uuid.uuid4())}
        )

    # ---- the cmdlets (under emu.lock) ---------------------------------------------------------------------------

    def _invoke(self, cmdlet: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        if cmdlet in self.rbac_cmdlets:
            return self.rbac_cmdlets[cmdlet](parameters, None).rows
        state = self.emu.compliance
        policies: list[dict[str, Any]] = state["policies"]
        if cmdlet == "Get-UnifiedAuditLogRetentionPolicy":
            return [dict(policy, Identity=policy["Name"]) for policy in policies]
        duration = parameters.get("RetentionDuration")
        if duration is not None and duration not in DURATION_DAYS:
            raise errors.enumeration(
                "RetentionDuration", duration, "UnifiedAuditLogRetentionDuration", list(DURATION_DAYS)
            )
        priority = parameters.get("Priority")
        if priority is not None and (
            not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 10000
        ):
            raise errors.bad_request(f"Priority {priority!r} must be a number from 1 to 10000.")
        if cmdlet == "New-UnifiedAuditLogRetentionPolicy":
            name = parameters.get("Name")
            if not isinstance(name, str) or not name or duration is None or priority is None:
                raise errors.bad_request("Name, Priority and RetentionDuration are required.")
            if any(p["Name"].lower() == name.lower() for p in policies):
                raise errors.make(400, TASK_ERROR, f"A policy with the name '{name}' already exists.")
            target: dict[str, Any] | None = None
        else:
            identity = str(parameters.get("Identity") or "")
            target = next((p for p in policies if p["Name"].lower() == identity.lower()), None)
            if target is None:
                raise errors.not_found(identity)
        if priority is not None and any(p["Priority"] == priority and p is not target for p in policies):
            raise errors.make(400, TASK_ERROR, f"The priority {priority} is already used by another policy.")
        if duration is not None and DURATION_DAYS[duration] > 180 and not state["audit_premium"]:
            raise errors.make(400, TASK_ERROR, LICENCE_TEXT)
        if target is None:
            record_types = parameters.get("RecordTypes") or []
            policies.append(
                {
                    "Name": parameters["Name"],
                    "Description": str(parameters.get("Description") or ""),
                    "Enabled": True,
                    "Priority": priority,
                    "RetentionDuration": duration,
                    "RecordTypes": list(record_types) if isinstance(record_types, list) else [record_types],
                    "Operations": list(parameters.get("Operations") or []),
                    "UserIds": list(parameters.get("UserIds") or []),
                }
            )
            return []
        for key in ("RetentionDuration", "Priority", "Description"):
            if key in parameters:
                target[key] = parameters[key]
        return []
