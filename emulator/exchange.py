"""The Exchange admin API on the wire: InvokeCommand auth, permissions, envelopes, $select and paging."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from . import errors
from .activity import admin_object_id
from .faults import EXCHANGE_BODY_KINDS, RESPONSE_KINDS, Fault, respond
from .paging import Cursor, CursorStore, make_token, page_size, parse_token
from .staleness import StaleReads
from .tenant import TRUNCATED_WARNING, CmdletResult
from .tokens import EXCHANGE_AUDIENCE, EXCHANGE_DELEGATED_SCOPE, EXCHANGE_ROLE, TokenError
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .emulator import Emulator

INVOKE_PATH = re.compile(r"^/adminapi/beta/(?P<tenant>[^/]+)/InvokeCommand/?$", re.IGNORECASE)
CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
GUID_PROPERTIES = frozenset({"Guid", "ExchangeGuid"})
NUL_BODY = b"\x00" * 16  # the kinder 403 (quirk real_error_bodies off)
REAL_NUL_BODY = b"\x00" * 4096  # "a long run of NUL bytes", labelled gzip and not gzip at all (§10.9)
DEFAULT_REDIRECT_HOST = "https://xyz01b.outlook.office365.com:446"
FILTER_PARAMETERS = ("Filter", "RecipientFilter", "RecipientPreviewFilter")
DOLLAR_BOOLEAN = re.compile(r"\$(?:true|false)\b", re.IGNORECASE)
READER_CMDLETS = frozenset({"Get-OrganizationConfig", "Get-AdminAuditLogConfig"})
WRITE_PREFIXES = ("set-", "enable-")


def cmdlet_allowed(cmdlet: str, directory_roles: list[str]) -> bool:
    """Which Entra directory roles may run which cmdlets (emulator-spec.md "Scenario JSON")."""
    roles = {str(r).lower() for r in directory_roles}
    if roles & {"exchange administrator", "global administrator"}:
        return True
    if "global reader" in roles and cmdlet.lower().startswith("get-"):
        return True
    return "security reader" in roles and cmdlet in READER_CMDLETS


def caller_problem(claims: dict[str, Any]) -> str | None:
    """Why an otherwise valid token may not call the admin API (None: it may): a signed-in administrator
    (grant-permissions) needs the delegated scope, an app the role Exchange.ManageAsApp. Security & Compliance
    applies the same rule."""
    if claims.get("idtyp") == "user":
        if EXCHANGE_DELEGATED_SCOPE not in str(claims.get("scp", "")).split():
            return f"The token has no '{EXCHANGE_DELEGATED_SCOPE}' scope."
        return None
    if EXCHANGE_ROLE not in (claims.get("roles") or []):
        return f"The token has no '{EXCHANGE_ROLE}' role."
    return None


def is_write(cmdlet: str | None) -> bool:
    return bool(cmdlet) and cmdlet.lower().startswith(WRITE_PREFIXES)


def error_response(error: errors.EmulatedError, real: bool = False) -> Response:
    return json_response(
        error.status,
        errors.envelope(error, real),
        {"X-ExceptionType": error.short_type_for(real), "request-id": str(uuid.uuid4())},
    )


def unauthorized(message: str) -> Response:
    return json_response(
        401,
        {"error": {"code": "Unauthorized", "message": message}},
        {"WWW-Authenticate": 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", error="invalid_token"'},
    )


def forbidden(real: bool = False) -> Response:
    """Exchange's app-only 403: a body of NUL bytes, not JSON (real: ~4 KiB of them, labelled gzip)."""
    if real:
        return Response(403, REAL_NUL_BODY, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    return Response(403, NUL_BODY, {"Content-Type": "application/json"})


class Projection:
    """Applies $select (case-insensitive) and adds the OData type sidecars next to arrays and GUIDs.

    Canonical names are resolved once and reused for every row of a page, keeping a page O(rows x columns).
    Lists are copied, so the answer can be encoded outside the tenant lock.
    """

    def __init__(self, select: list[str] | None) -> None:
        self.select = select
        self._canonical: dict[str, str] = {}

    def _keys(self, row: dict[str, Any]) -> list[str]:
        if self.select is None:
            return list(row)
        keys = []
        for name in self.select:
            key = self._canonical.get(name)
            if key is None or key not in row:
                key = next((k for k in row if k.lower() == name.lower()), None)
                if key is None:
                    continue
                self._canonical[name] = key
            keys.append(key)
        return keys

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self._keys(row):
            value = row[key]
            if isinstance(value, list):
                out[f"{key}@odata.type"] = "#Collection(String)"
                value = list(value)
            elif key in GUID_PROPERTIES:
                out[f"{key}@data.type"] = "System.Guid"
            out[key] = value
        return out


class ExchangeApi:
    """Handles POST /adminapi/beta/{tenant}/InvokeCommand for one Emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.cursors = CursorStore(emulator.scenario["cursor_ttl_seconds"])
        self.stale = StaleReads(emulator.faults)

    @property
    def real(self) -> bool:
        return bool(self.emu.quirks["real_error_bodies"])

    def base_url(self, req: Request) -> str:
        """The host the request came to (a regional host a redirect led to, too), as the real service links."""
        return f"https://{req.host}" if req.host else self.emu.exchange_url

    def error(self, error: errors.EmulatedError) -> Response:
        return error_response(error, self.real)

    def handle(self, req: Request) -> Response:
        match = INVOKE_PATH.match(req.path)
        if not match:
            return json_response(404, {"error": {"code": "NotFound", "message": f"No route for {req.path}"}})
        if req.method != "POST":
            return json_response(405, {"error": {"code": "MethodNotAllowed", "message": "Use POST"}})
        body = req.json()
        cmdlet_input = body.get("CmdletInput") if isinstance(body, dict) else None
        raw_name = cmdlet_input.get("CmdletName") if isinstance(cmdlet_input, dict) else None
        cmdlet = self.emu.tenant.canonical_cmdlet(raw_name) if isinstance(raw_name, str) else None
        skiptoken = req.query.get("$skiptoken")
        position = parse_token(skiptoken) if skiptoken else None
        page = position.page if position else (None if skiptoken else 1)

        kinds = set((RESPONSE_KINDS | EXCHANGE_BODY_KINDS) - {"garbage_token"})
        if not skiptoken:
            kinds.discard("expire_cursor")
        fault = self.emu.faults.fire(kinds, listener="exchange", cmdlet=cmdlet or raw_name, page=page, path=req.path)

        def proceed() -> Response:
            return self._process(req, match.group("tenant"), cmdlet_input, raw_name, cmdlet)

        if fault is None:
            return proceed()
        if fault.kind == "expire_cursor":
            if position:
                self.cursors.drop(position.qid)
            return self.error(errors.pagination())
        if fault.kind in EXCHANGE_BODY_KINDS:
            return self._body_fault(fault, req, proceed)
        return respond(fault, "exchange", proceed, self.emu.wait, real=self.real)

    def _body_fault(self, fault: Fault, req: Request, proceed: Any) -> Response:
        """The quirk faults of exchange-admin-api.md §10: redirects, errors inside a 200, 200s without rows."""
        opts = fault.options
        if fault.kind == "redirect":
            location = opts.get("location") or DEFAULT_REDIRECT_HOST + req.path + (
                f"?{req.raw_query}" if req.raw_query else ""
            )
            return Response(int(opts.get("status", 302)), b"", {"Location": str(location)})
        if fault.kind == "ok_error":
            error = errors.make(
                int(opts.get("status", 400)),
                str(opts.get("exception_type", errors.ODATA)),
                str(opts.get("message", "Emulated error inside an HTTP 200")),
            )
            envelope = errors.envelope(error, self.real)
            key = str(opts.get("key", "error"))
            if key not in ("error", "@odata.error"):
                raise ValueError("ok_error: key must be 'error' or '@odata.error'")
            payload = {key: envelope["error"], "@adminapi.warnings": []}
            return json_response(200, payload, {"X-ExceptionType": error.short_type_for(self.real)})
        response = proceed()
        if response.status != 200:
            return response
        payload = json.loads(response.body)
        if fault.kind == "ok_no_value":
            payload.pop("value", None)
        elif fault.kind == "ok_null_value":
            payload["value"] = None
        else:  # adminapi_errors: the rows stay, the non-terminating errors ride along
            texts = opts.get("errors") or ["Emulated non-terminating error: the operation could not be completed."]
            payload["adminapi.errors@odata.type"] = "#Collection(String)"
            payload["@adminapi.errors"] = [str(text) for text in texts]
        response.body = json.dumps(payload, separators=(",", ":")).encode()
        return response

    # ---- the normal path ------------------------------------------------------------------------------------

    def _authenticate(self, req: Request, path_tenant: str) -> str | None:
        """None when the bearer token is acceptable, else the reason for the 401."""
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "The request has no bearer token."
        try:
            claims = self.emu.issuer.verify(token.strip())
        except TokenError as exc:
            return str(exc)
        if claims.get("aud") != EXCHANGE_AUDIENCE:
            return f"The token audience '{claims.get('aud')}' is not valid for this resource."
        if str(claims.get("tid", "")).lower() != self.emu.tenant_id.lower():
            return "The token was issued for a different tenant."
        if path_tenant.lower() not in {self.emu.tenant_id.lower(), self.emu.tenant.organization.lower()}:
            return f"The tenant '{path_tenant}' in the URL is not the token's tenant."
        return caller_problem(claims)

    def _allowed(self, req: Request, cmdlet: str, parameters: Any) -> bool:
        """A delegated administrator by the directory roles in the token; an app by its Entra directory roles
        or, failing those, by the Exchange roles its role groups give it (emulator/rbac.py), per parameter."""
        claims = self._claims(req)
        if claims.get("idtyp") == "user":
            return cmdlet_allowed(cmdlet, [str(r) for r in claims.get("wids") or []])
        if cmdlet_allowed(cmdlet, self.emu.tenant.principal.get("directory_roles") or []):
            return True
        names = [str(name) for name in parameters] if isinstance(parameters, dict) else []
        with self.emu.lock:
            return self.emu.tenant.rbac.app_allowed(str(claims.get("appid", "")), cmdlet, names)

    def _claims(self, req: Request) -> dict[str, Any]:
        """The claims of the (already accepted) bearer token: who made the call."""
        try:
            return self.emu.issuer.verify(req.headers.get("authorization", "").partition(" ")[2].strip())
        except TokenError:
            return {}

    def _process(
        self, req: Request, path_tenant: str, cmdlet_input: Any, raw_name: Any, cmdlet: str | None
    ) -> Response:
        reason = self._authenticate(req, path_tenant)
        if reason:
            return unauthorized(reason)
        if not isinstance(raw_name, str):
            return self.error(
                errors.bad_request(
                    'The request body must be {"CmdletInput": {"CmdletName": ..., "Parameters": {...}}}.'
                )
            )
        parameters = cmdlet_input.get("Parameters")
        if cmdlet is None or not self._allowed(req, cmdlet, parameters):
            return forbidden(self.real)
        if not isinstance(parameters, dict):
            return self.error(
                errors.bad_request(
                    "CmdletInput.Parameters must be an object; send {} when the cmdlet takes no parameters."
                )
            )
        select = [s.strip() for s in req.query["$select"].split(",") if s.strip()] if "$select" in req.query else None
        size = page_size(req.headers.get("prefer"))
        anchor = (req.headers.get("x-anchormailbox") or "").strip().lower()
        skiptoken = req.query.get("$skiptoken")
        if skiptoken:
            position = parse_token(skiptoken)
            cursor = self.cursors.get(position.qid) if position else None
            if cursor is None or cursor.cmdlet != cmdlet:
                return self.error(errors.pagination())
            if self.emu.quirks["anchor_bound_cursors"] and cursor.anchor != anchor:
                return self.error(errors.pagination())  # the cursor lives on the back end the anchor routed to
            return self._page(req, path_tenant, cursor, position.offset, position.page, size, select)
        if self.emu.quirks["reject_dollar_booleans"]:
            for name in FILTER_PARAMETERS:
                value = next((v for k, v in parameters.items() if k.lower() == name.lower()), None)
                if isinstance(value, str) and DOLLAR_BOOLEAN.search(value):
                    return self.error(errors.dollar_boolean(name, value))
        if is_write(cmdlet) and self.emu.faults.fire(
            {"ignore_writes"}, listener="exchange", cmdlet=cmdlet, page=1, path=req.path
        ):
            return self._success(req, path_tenant, [], [], None)
        try:
            with self.emu.lock:
                tenant, before = self.emu.tenant, None
                if is_write(cmdlet):
                    before = self.stale.snapshot(tenant) if self.stale.snapshot_needed(cmdlet) else None
                elif (stale := self.stale.serve(cmdlet)) is not None:
                    if stale.not_found:
                        raise errors.not_found(str(parameters.get("Identity") or cmdlet.removeprefix("Get-")))
                    tenant = stale.tenant
                result = tenant.invoke(cmdlet, parameters, req.headers.get("x-anchormailbox"))
                if before is not None:
                    self.stale.arm(cmdlet, before, req.path)
                if is_write(cmdlet):  # the write's ExchangeAdmin record, for the Management Activity API
                    self.emu.activity.record_admin_write(
                        cmdlet, parameters, self._claims(req), admin_object_id(tenant, cmdlet, parameters)
                    )
        except errors.EmulatedError as exc:
            return self.error(exc)
        if not result.paged:
            projection = Projection(select)
            return self._success(req, path_tenant, [projection(r) for r in result.rows], result.warnings, None)
        if len(result.rows) <= size:
            return self._single_page(req, path_tenant, result, select)
        cursor = self.cursors.create(cmdlet, result.rows, result.render, result.warnings, anchor)
        return self._page(req, path_tenant, cursor, 0, 1, size, select)

    def _single_page(self, req: Request, path_tenant: str, result: CmdletResult, select: list[str] | None) -> Response:
        """A paged cmdlet whose whole result fits one page: no cursor needed."""
        projection, render = Projection(select), result.render or dict
        with self.emu.lock:
            rows = [projection(render(r)) for r in result.rows]
        return self._success(req, path_tenant, rows, result.warnings, None)

    def _page(
        self,
        req: Request,
        path_tenant: str,
        cursor: Cursor,
        offset: int,
        page: int,
        size: int,
        select: list[str] | None,
    ) -> Response:
        end = offset + size
        projection, render = Projection(select), cursor.render
        with self.emu.lock:
            rows = [projection(render(r)) for r in cursor.rows[offset:end]]
        more = end < len(cursor.rows)
        next_link = None
        if more:
            query = f"$select={req.query['$select']}&" if "$select" in req.query else ""
            next_link = (
                f"{self.base_url(req)}/adminapi/beta/{path_tenant}/InvokeCommand?"
                f"{query}$skiptoken={make_token(cursor.qid, end, page + 1)}"
            )
            next_link = self._tamper_next_link(req, next_link, cursor.cmdlet, page)
        if not more:
            warnings = cursor.warnings  # a ResultSize cut: the truncation warning on the page that ends the result
        elif self.emu.quirks["paging_warning_every_page"]:
            warnings = [TRUNCATED_WARNING]  # the real service repeats it on every page that has a nextLink (§10.7)
        else:
            warnings = []
        return self._success(req, path_tenant, rows, warnings, next_link)

    def _tamper_next_link(self, req: Request, next_link: str, cmdlet: str, page: int) -> str:
        fault = self.emu.faults.fire(
            {"foreign_next_link", "loop_next_link"}, listener="exchange", cmdlet=cmdlet, page=page, path=req.path
        )
        if fault is None:
            return next_link
        if fault.kind == "foreign_next_link":
            return self.emu.foreign_url + next_link[len(self.base_url(req)) :]
        # loop: hand back the link this very page was fetched with (for page N that is the previous nextLink).
        return f"{self.base_url(req)}{req.path}" + (f"?{req.raw_query}" if req.raw_query else "")

    def _success(
        self, req: Request, path_tenant: str, rows: list[dict[str, Any]], warnings: list[str], next_link: str | None
    ) -> Response:
        payload: dict[str, Any] = {
            "@odata.context": f"{self.base_url(req)}/adminapi/beta/{path_tenant}/$metadata"
            "#Collection(Exchange.GenericHashTable)",
            "adminapi.warnings@odata.type": "#Collection(String)",
            "@adminapi.warnings": list(warnings),
        }
        if next_link:
            payload["@odata.nextLink"] = next_link
        payload["value"] = rows
        body = json.dumps(payload, separators=(",", ":")).encode()
        return Response(
            200,
            body,
            {"Content-Type": CONTENT_TYPE, "request-id": str(uuid.uuid4()), "X-CalculatedBETarget": errors.SERVER_FQDN},
        )
