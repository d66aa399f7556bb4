"""The remediation endpoint's logic: who is calling, may they, what do they ask. Independent of Azure Functions.

Authorisation has two layers: the function key (checked by the host) and the App Service authentication
principal with the app role `MailboxAudit.Remediate` (every tenant) or `MailboxAudit.Remediate.<tenant id>` (that
tenant of the register only). `REMEDIATION_ALLOW_KEY_ONLY=true` drops the second layer.
With a tenants register the request names its tenant (`tenantId`); without one, it may name only EXO_TENANT_ID.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from shared.config import loader
from shared.config.settings import AppSettings, ConfigError
from shared.config.tenants import Tenant
from shared.controls.registry import IMPLEMENTED_CONTROLS, NOT_REMEDIABLE
from shared.evidence.document import remediation_document
from shared.model import RunReport
from shared.runtime.tenants import RegisterError, load_register
from shared.text import shorten

log = logging.getLogger("mailbox_audit_guard.http")

REMEDIATE_ROLE = "MailboxAudit.Remediate"
ROLE_CLAIM_URI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
MAX_BODY_BYTES = 64 * 1024
# Python 3.11's parser gave up (RecursionError) on bodies nested about 1,000 deep; 3.13's C parser goes to ~9,000.
# A body deeper than this stays "not valid JSON", whatever the interpreter.
MAX_JSON_DEPTH = 1000
MAX_PRINCIPAL_HEADER_BYTES = 16 * 1024

# What a request may name: a control with nothing to write (audit-pipeline) is not remediation; a run of the
# default set still checks it.
REMEDIABLE = tuple(cid for cid in IMPLEMENTED_CONTROLS if cid not in NOT_REMEDIABLE)
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "controls": {
            "type": "array",
            "items": {"enum": list(REMEDIABLE)},
            "minItems": 1,
            "uniqueItems": True,
        },
        "dryRun": {"type": "boolean"},
        "tenantId": {
            "type": "string",
            "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        },
    },
}
_validator = jsonschema.Draft202012Validator(REQUEST_SCHEMA)


@dataclass(frozen=True)
class Caller:
    """Who asked, as App Service authentication (or the function key alone) vouches for it."""

    id: str | None
    name: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    via: str = "easyauth"

    @property
    def label(self) -> str:
        """How the caller is recorded in telemetry and reports."""
        if self.via == "function-key" and not self.name and not self.id:
            return "function-key"
        return f"{self.name or 'unknown'} ({self.id or 'no object id'})"


@dataclass(frozen=True)
class RemediationRequest:
    controls: tuple[str, ...]
    dry_run: bool
    tenant_id: str | None = None  # as asked (lower case); None: the single tenant of the EXO_* settings
    tenant: Tenant | None = None  # the tenants register's entry, when there is a register


class HttpProblem(Exception):
    """An answer other than 200, with a message for the caller."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def read_principal(headers: Mapping[str, str]) -> Caller | None:
    """Decode X-MS-CLIENT-PRINCIPAL; None when absent. Accepts roles as `roles` claims or the `role_typ` URI."""
    raw = headers.get("x-ms-client-principal")
    if not raw:
        return None
    if len(raw) > MAX_PRINCIPAL_HEADER_BYTES:
        raise HttpProblem(401, "The client principal header is too large to be genuine.")
    try:
        principal = json.loads(base64.b64decode(raw, validate=True))
        claims = principal.get("claims") or []
        role_types = {"roles", principal.get("role_typ") or ROLE_CLAIM_URI}
        roles = frozenset(
            str(c["val"])
            for c in claims
            if isinstance(c, dict) and c.get("typ") in role_types and isinstance(c.get("val"), str)
        )
    # RecursionError: a forged header carrying deeply nested JSON (found by tests/hardening) must be a 401, not a 500.
    except (ValueError, binascii.Error, AttributeError, TypeError, KeyError, RecursionError):
        raise HttpProblem(401, "The client principal header could not be read.") from None
    name = headers.get("x-ms-client-principal-name") or _claim(claims, "preferred_username", "name", "appid", "azp")
    return Caller(
        id=headers.get("x-ms-client-principal-id")
        or _claim(claims, "oid", "http://schemas.microsoft.com/identity/claims/objectidentifier"),
        name=name,
        roles=roles,
    )


def _claim(claims: list[Any], *types: str) -> str | None:
    for claim in claims:
        if isinstance(claim, dict) and claim.get("typ") in types and isinstance(value := claim.get("val"), str):
            return value
    return None


def authorise(headers: Mapping[str, str], settings: AppSettings) -> Caller:
    """The caller, when allowed to remediate; otherwise HttpProblem 401 (who are you?) or 403 (not you)."""
    caller = read_principal(headers) if settings.auth_enabled or not settings.allow_key_only else None
    if settings.allow_key_only:
        return (
            Caller(id=caller.id, name=caller.name, roles=caller.roles, via="function-key")
            if caller
            else Caller(id=None, name=None, via="function-key")
        )
    if not settings.auth_enabled:
        raise HttpProblem(
            403,
            "Remediation needs App Service authentication (Entra ID) on this Function App, "
            "so that the caller's identity can be trusted; or set REMEDIATION_ALLOW_KEY_ONLY=true "
            "to accept the function key alone (weaker).",
        )
    if caller is None:
        raise HttpProblem(
            401,
            "Sign in first: no authenticated caller (App Service authentication principal).",
            {"WWW-Authenticate": "Bearer"},
        )
    if not any(role == REMEDIATE_ROLE or role.startswith(f"{REMEDIATE_ROLE}.") for role in caller.roles):
        raise HttpProblem(403, f"The caller lacks the app role {REMEDIATE_ROLE}.")
    return caller


def tenant_role(tenant_id: str) -> str:
    """The app role value that lets a caller remediate one tenant only (app role values allow dots)."""
    return f"{REMEDIATE_ROLE}.{tenant_id}"


def authorise_tenant(caller: Caller, tenant_id: str | None) -> None:
    """403 unless the caller's roles cover the tenant: the global role, or that tenant's own role. The function key
    alone (REMEDIATION_ALLOW_KEY_ONLY) covers every tenant, as it covers every control."""
    if caller.via == "function-key":
        return
    own = tenant_role(tenant_id).lower() if tenant_id is not None else None
    if REMEDIATE_ROLE in caller.roles or any(role.lower() == own for role in caller.roles):  # a GUID's case: either
        return
    if tenant_id is None:
        raise HttpProblem(403, "The caller's app roles are limited to tenants; name one in tenantId.")
    raise HttpProblem(403, f"The caller lacks the app role {REMEDIATE_ROLE} or {tenant_role(tenant_id)}.")


def resolve_tenant(request: RemediationRequest, env: Mapping[str, str]) -> RemediationRequest:
    """The request with its tenant of the register; 400 when it names none (or one not in it) while a register
    exists, or names another tenant than EXO_TENANT_ID without one; 503 when the register cannot be read."""
    try:
        register = load_register(env, "http")
    except (RegisterError, ConfigError) as exc:
        raise HttpProblem(503, f"The tenants register cannot be read: {exc}") from None
    if register is None:
        if request.tenant_id is not None and request.tenant_id != loader.reported_tenant(env):
            raise HttpProblem(400, "tenantId: this app serves only its configured tenant (EXO_TENANT_ID).")
        return request
    if request.tenant_id is None:
        raise HttpProblem(400, "tenantId is required: this app serves the tenants of its register.")
    tenant = register.find(request.tenant_id)
    if tenant is None:
        refused = register.refusal(request.tenant_id)
        why = f"its register entry is refused ({refused.message})" if refused else "it is not in the tenants register"
        raise HttpProblem(400, f"tenantId {request.tenant_id}: {why}.")
    return RemediationRequest(request.controls, request.dry_run, request.tenant_id, tenant)


def json_depth(document: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON document (a scalar is 0), without recursing."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in children)
    return deepest


def parse_request(body: bytes) -> RemediationRequest:
    """Validate the JSON body (all fields optional): controls (list of ids), dryRun (boolean)."""
    if len(body) > MAX_BODY_BYTES:
        raise HttpProblem(413, f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    if not body.strip():
        document: Any = {}
    else:
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise HttpProblem(400, "The request body is not valid JSON.") from None
        if json_depth(document) > MAX_JSON_DEPTH:
            raise HttpProblem(400, "The request body is not valid JSON.")
    try:
        error = jsonschema.exceptions.best_match(_validator.iter_errors(document))
    except RecursionError:
        # jsonschema compares (uniqueItems) and repr()s values recursively: a ~1 KB body of two equal arrays nested
        # ~250 deep exhausted the stack and answered 500 (found by tests/hardening).
        raise HttpProblem(400, "The request body is nested too deeply.") from None
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "body"
        raise HttpProblem(
            400,
            f"Invalid request ({where}): {shorten(error.message, 200)}. "
            f'Expected {{"controls": [{", ".join(map(repr, REMEDIABLE))}], '
            '"dryRun": true|false, "tenantId": "<tenant GUID>"}, all optional (tenantId required with a tenants '
            "register); dryRun defaults to true.",
        )
    tenant_id = document.get("tenantId")
    return RemediationRequest(
        controls=tuple(document.get("controls") or ()),  # none named: the run's default set (service.execute)
        # A bare POST only shows what would change: writing needs an explicit "dryRun": false.
        dry_run=bool(document.get("dryRun", True)),
        tenant_id=tenant_id.lower() if isinstance(tenant_id, str) else None,
    )


def handle(
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    env: Mapping[str, str],
    run: Callable[[RemediationRequest, Caller], RunReport],
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Answer one request: (status, JSON document, extra headers). `run` does the remediation itself."""
    try:
        if method.upper() != "POST":
            raise HttpProblem(405, "Use POST.", {"Allow": "POST"})
        try:
            settings = AppSettings.from_env(env)
        except ConfigError as exc:
            raise HttpProblem(503, str(exc)) from None
        caller = authorise(headers, settings)
        request = parse_request(body)
        authorise_tenant(caller, request.tenant_id)
        request = resolve_tenant(request, env)
    except HttpProblem as problem:
        log.warning("Remediation request refused (%d): %s", problem.status, problem.message)
        return problem.status, {"error": problem.message}, problem.headers
    report = run(request, caller)
    # No remediation step at all means the run could not start (settings, credentials): the service is unusable,
    # unless every control asked for is an opt-in one switched off (then `not_run` says why).
    started = bool(report.remediation) or (bool(report.not_run) and not report.controls)
    return (200 if started else 503), response_document(report), {}


def response_document(report: RunReport) -> dict[str, Any]:
    steps = [remediation_document(step) for step in report.remediation]
    # Unverified and Deferred are not completed: the next run verifies or writes (the caller should check later).
    completed = all(step.outcome.done for step in report.remediation) and bool(steps)
    document = {
        "run_id": report.run_id,
        "caller": report.caller,
        "tenant_id": report.tenant_id,
        **({"tenant_name": report.tenant_name} if report.tenant_name else {}),
        "dry_run": report.dry_run,
        "status": str(report.status),
        "completed": completed,
        "controls": steps,
        "not_run": [{"id": control_id, "reason": reason} for control_id, reason in report.not_run.items()],
    }
    if not steps and report.controls:  # the run could not start: say why, per control
        document["error"] = "; ".join(sorted({result.message for result in report.controls}))
    return document
