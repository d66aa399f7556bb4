"""The Exchange admin API on the wire: InvokeCommand auth, permissions, envelopes, $select and paging."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from . import errors
from .faults import RESPONSE_KINDS, respond
from .paging import Cursor, CursorStore, make_token, page_size, parse_token
from .staleness import StaleReads
from .tenant import CmdletResult
from .tokens import EXCHANGE_AUDIENCE, EXCHANGE_ROLE, TokenError
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .emulator import Emulator

INVOKE_PATH = re.compile(r"^/adminapi/beta/(?P<tenant>[^/]+)/InvokeCommand/?$", re.IGNORECASE)
CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
GUID_PROPERTIES = frozenset({"Guid", "ExchangeGuid"})
NUL_BODY = b"\x00" * 16
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


def is_write(cmdlet: str | None) -> bool:
    return bool(cmdlet) and cmdlet.lower().startswith(WRITE_PREFIXES)


def error_response(error: errors.EmulatedError) -> Response:
    return json_response(
        error.status, errors.envelope(error), {"X-ExceptionType": error.short_type, "request-id": str(uuid.uuid4())}
    )


def unauthorized(message: str) -> Response:
    return json_response(
        401,
        {"error": {"code": "Unauthorized", "message": message}},
        {"WWW-Authenticate": 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", error="invalid_token"'},
    )


def forbidden() -> Response:
    """Exchange's app-only 403: a body of NUL bytes, not JSON."""
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

        kinds = set(RESPONSE_KINDS - {"garbage_token"})
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
            return error_response(errors.pagination())
        return respond(fault, "exchange", proceed, self.emu.wait)

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
        if EXCHANGE_ROLE not in (claims.get("roles") or []):
            return f"The token has no '{EXCHANGE_ROLE}' role."
        return None

    def _process(
        self, req: Request, path_tenant: str, cmdlet_input: Any, raw_name: Any, cmdlet: str | None
    ) -> Response:
        reason = self._authenticate(req, path_tenant)
        if reason:
            return unauthorized(reason)
        if not isinstance(raw_name, str):
            return error_response(
                errors.bad_request(
                    'The request body must be {"CmdletInput": {"CmdletName": ..., "Parameters": {...}}}.'
                )
            )
        if cmdlet is None or not cmdlet_allowed(cmdlet, self.emu.tenant.principal.get("directory_roles") or []):
            return forbidden()
        parameters = cmdlet_input.get("Parameters")
        if not isinstance(parameters, dict):
            return error_response(
                errors.bad_request(
                    "CmdletInput.Parameters must be an object; send {} when the cmdlet takes no parameters."
                )
            )
        select = [s.strip() for s in req.query["$select"].split(",") if s.strip()] if "$select" in req.query else None
        size = page_size(req.headers.get("prefer"))
        skiptoken = req.query.get("$skiptoken")
        if skiptoken:
            position = parse_token(skiptoken)
            cursor = self.cursors.get(position.qid) if position else None
            if cursor is None or cursor.cmdlet != cmdlet:
                return error_response(errors.pagination())
            return self._page(req, path_tenant, cursor, position.offset, position.page, size, select)
        if is_write(cmdlet) and self.emu.faults.fire(
            {"ignore_writes"}, listener="exchange", cmdlet=cmdlet, page=1, path=req.path
        ):
            return self._success(path_tenant, [], [], None)
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
        except errors.EmulatedError as exc:
            return error_response(exc)
        if not result.paged:
            projection = Projection(select)
            return self._success(path_tenant, [projection(r) for r in result.rows], result.warnings, None)
        if len(result.rows) <= size:
            return self._single_page(path_tenant, result, select)
        cursor = self.cursors.create(cmdlet, result.rows, result.render, result.warnings)
        return self._page(req, path_tenant, cursor, 0, 1, size, select)

    def _single_page(self, path_tenant: str, result: CmdletResult, select: list[str] | None) -> Response:
        """A paged cmdlet whose whole result fits one page: no cursor needed."""
        projection, render = Projection(select), result.render or dict
        with self.emu.lock:
            rows = [projection(render(r)) for r in result.rows]
        return self._success(path_tenant, rows, result.warnings, None)

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
                f"{self.emu.exchange_url}/adminapi/beta/{path_tenant}/InvokeCommand?"
                f"{query}$skiptoken={make_token(cursor.qid, end, page + 1)}"
            )
            next_link = self._tamper_next_link(req, next_link, cursor.cmdlet, page)
        # The truncation warning belongs to the answer that ends the result.
        return self._success(path_tenant, rows, [] if more else cursor.warnings, next_link)

    def _tamper_next_link(self, req: Request, next_link: str, cmdlet: str, page: int) -> str:
        fault = self.emu.faults.fire(
            {"foreign_next_link", "loop_next_link"}, listener="exchange", cmdlet=cmdlet, page=page, path=req.path
        )
        if fault is None:
            return next_link
        if fault.kind == "foreign_next_link":
            return self.emu.foreign_url + next_link[len(self.emu.exchange_url) :]
        # loop: hand back the link this very page was fetched with (for page N that is the previous nextLink).
        return f"{self.emu.exchange_url}{req.path}" + (f"?{req.raw_query}" if req.raw_query else "")

    def _success(
        self, path_tenant: str, rows: list[dict[str, Any]], warnings: list[str], next_link: str | None
    ) -> Response:
        payload: dict[str, Any] = {
            "@odata.context": f"{self.emu.exchange_url}/adminapi/beta/{path_tenant}/$metadata"
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
