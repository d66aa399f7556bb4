"""Typed errors of the Exchange admin API, and the parser that turns an error answer into one.

Each message says what happened and what an administrator can do about it. No token or secret ever enters one.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.exchange.roles import missing_role_hint
from shared.text import shorten

WRITE_ROLES_HINT = "Exchange Administrator (to remediate) or Global Reader (to check only)"
# Purview audit retention policies (activity-feed.md §6.4, permissions.md §2): reading them, too, needs the Purview
# role Organization Configuration; a Security & Compliance role group holding it (least privilege) or the Entra roles
# Compliance Data Administrator and Compliance Administrator give it; Global Reader and Security Reader answer 403.
RETENTION_ROLES_HINT = (
    "The app has no role that allows {cmdlet} on the Security & Compliance endpoint: it needs the Purview role "
    "Organization Configuration ({purpose}; no read-only role works, Global Reader is not enough). Least privilege: "
    "a Security & Compliance role group holding only that role (`python -m shared grant-permissions --exchange-roles "
    "check --retention-policy`, or `remediate`); broader: the Entra role Compliance Data Administrator or Compliance "
    "Administrator (`python -m shared grant-permissions --retention-policy`). Or switch the check off "
    "(AUDIT_RETENTION_POLICY_CHECK=false)."
)
RETENTION_LICENCE_HINT = (
    "Audit records kept longer than 180 days need Audit (Premium): Office 365 / Microsoft 365 E5, or the E5 "
    "Compliance or E5 eDiscovery and Audit add-on (TenYears also the 10-Year Audit Log Retention add-on). Nothing was "
    "changed; this is not retried. Buy or assign the licence, or lower AUDIT_MIN_SEARCH_RETENTION_DAYS to 180."
)


class ExchangeError(Exception):
    """A cmdlet call that did not produce a usable answer."""

    hint = "See the message above; the request id helps Microsoft support."

    def __init__(
        self,
        summary: str,
        *,
        cmdlet: str | None = None,
        status: int | None = None,
        detail: str | None = None,
        exception_type: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.summary = summary
        self.cmdlet = cmdlet
        self.status = status
        self.detail = detail
        self.exception_type = exception_type
        self.request_id = request_id
        if hint is not None:
            self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.cmdlet}: " if self.cmdlet else ""
        status = f" (HTTP {self.status})" if self.status else ""
        detail = f" Exchange said: {self.detail}" if self.detail else ""
        request = f" [client-request-id {self.request_id}]" if self.request_id else ""
        return f"{where}{self.summary}{status}.{detail} {self.hint}{request}".strip()


class ExchangeAuthError(ExchangeError):
    hint = (
        "The token was rejected: make sure the app (or managed identity) has the Office 365 Exchange Online "
        "application permission Exchange.ManageAsApp with admin consent, and that the token is for the "
        "Exchange resource of the right cloud (EXO_CLOUD)."
    )


class ExchangePermissionError(ExchangeError):
    hint = (
        f"The app has no Entra role that allows this cmdlet: assign {WRITE_ROLES_HINT} to its service "
        "principal, or add it to an Exchange role group that grants the cmdlet."
    )

    def __init__(self, summary: str, *, role: str | None = None, **kwargs: Any) -> None:
        self.role = role  # the sentence naming the Exchange role the call needs (shared.exchange.roles)
        if role is not None:
            kwargs["hint"] = f"{role} With the Entra-role model: assign {WRITE_ROLES_HINT} to its service principal."
        super().__init__(summary, **kwargs)


class ExchangeNotFound(ExchangeError):
    hint = "The object does not exist (right after a write this can be replication lag; try again later)."


class ExchangeBadRequest(ExchangeError):
    hint = "Exchange rejected a parameter; the detail above names it. This is not retried."


class ExchangeLicenceError(ExchangeBadRequest):
    hint = "The mailbox lacks the licence this audit action needs (Audit Premium / E5). This is not retried."


class ExchangeProxyRequired(ExchangeBadRequest):
    hint = "The cmdlet must be routed to another server: send it with the audit-log anchor mailbox."


class TenantDehydrated(ExchangeBadRequest):
    hint = (
        "The tenant is dehydrated, or its customisation is still propagating: while IsDehydrated reads True, "
        "Enable-OrganizationCustomization is needed first (remediation runs it); once it reads False, wait (up to "
        "60 minutes after Enable-OrganizationCustomization) and try again, without running it again."
    )


class PaginationExpired(ExchangeBadRequest):
    hint = "The paging cursor expired (30 minutes) or was invalid; the query is restarted once."


class ExchangeThrottled(ExchangeError):
    hint = "Exchange is throttling this tenant: try again later, or spread the runs out."

    def __init__(self, summary: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(summary, **kwargs)


class ExchangeServerError(ExchangeError):
    hint = "Exchange Online had a server-side problem; it was retried. Check the Microsoft 365 service health."


class ExchangeTransportError(ExchangeError):
    hint = "The Exchange endpoint could not be reached or did not answer in time; check EXO_ENDPOINT and the network."


class ExchangeProtocolError(ExchangeError):
    hint = "The answer was not usable, so nothing was concluded from it (fail closed)."


class ExchangeIncompleteRead(ExchangeProtocolError):
    """A read answered 200 with rows but also with non-terminating errors (`@adminapi.errors`)."""

    hint = "Exchange reported errors next to the rows, so the read may be incomplete; nothing was concluded from it."


class ExchangeRedirect(ExchangeError):
    """A 3xx the client would not follow (another domain, plain http, no Location, or away from a pinned host)."""

    hint = (
        "Exchange redirected this tenant to another host. If that host is right for your tenant, set EXO_ENDPOINT "
        "to it (https://<host>); the token is never sent to a host outside the configured Exchange domain."
    )

    def __init__(self, summary: str, *, location_host: str | None = None, **kwargs: Any) -> None:
        self.location_host = location_host
        super().__init__(summary, **kwargs)


class ComplianceUnavailable(ExchangeError):
    """No Security & Compliance client can be opened for this run (no known host for the cloud, or none wired in)."""

    hint = "Set IPPS_ENDPOINT to the tenant's Security & Compliance host (https://<host>), or switch the check off."


class ExchangeDeadlineExceeded(ExchangeError):
    hint = (
        "The operation did not finish within its deadline (EXO_OPERATION_DEADLINE_SECONDS); Exchange may be "
        "throttling or slow. Try again later."
    )


@dataclass(frozen=True)
class ErrorInfo:
    """What an error answer says, as far as it could be read.

    `text` is the most specific text the envelope carries; `message` is `error.message` (often generic, but for
    "Cmdlet needs proxy" it is the real text).
    """

    code: str | None = None
    error_id: str | None = None
    exception_type: str | None = None
    text: str | None = None
    readable: bool = False
    message: str | None = None


GZIP_MAGIC = b"\x1f\x8b"
# The status an `error.code` stands for, to classify an error envelope that arrived inside an HTTP 200.
CODE_STATUS = {
    "badrequest": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "notfound": 404,
    "requesttimeout": 408,
    "conflict": 409,
    "toomanyrequests": 429,
    "internalservererror": 500,
    "badgateway": 502,
    "serviceunavailable": 503,
    "gatewaytimeout": 504,
}


def status_for_code(code: str | None) -> int:
    """The HTTP status an error code names (a 200 carrying an `error`); an unknown code counts as a 400."""
    return CODE_STATUS.get((code or "").replace(" ", "").lower(), 400)


def parse_error_body(body: bytes, exception_type_header: str | None = None) -> ErrorInfo:
    """Read the admin API error envelope; bodies that are not JSON (NUL bytes, HTML, empty) give an empty ErrorInfo
    (except for the `X-ExceptionType` header's type, when one was sent).

    exchange-admin-api.md §10.9: text = the first non-empty of `innererror.internalexception.message`,
    `details[0].message` without its `ErrorId|Type|` prefix (the ErrorId may be empty), `error.message`;
    type = `internalexception.type`, else the middle segment of `details[0].message`, else the header.
    """
    header_type = _str(exception_type_header.strip()) if exception_type_header else None
    text = body
    if text[:2] == GZIP_MAGIC:
        text = _gunzip(text)
    text = text.replace(b"\x00", b"").strip()
    if not text:
        return ErrorInfo(exception_type=header_type)
    try:
        doc = json.loads(text.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return ErrorInfo(exception_type=header_type)
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return ErrorInfo(exception_type=header_type)
    return parse_error_object(error, header_type)


def parse_error_object(error: dict[str, Any], exception_type_header: str | None = None) -> ErrorInfo:
    """The ErrorInfo of one decoded `error` (or `@odata.error`) object."""
    code = _str(error.get("code"))
    message = _str(error.get("message"))
    inner = error.get("innererror")
    internal = inner.get("internalexception") if isinstance(inner, dict) else None
    internal_text = _str(internal.get("message")) if isinstance(internal, dict) else None
    internal_type = _str(internal.get("type")) if isinstance(internal, dict) else None
    error_id = details_type = details_text = None
    details = error.get("details")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        detail = _str(details[0].get("message"))
        if detail:
            parts = detail.split("|", 2)
            if len(parts) == 3:
                error_id, details_type, details_text = _str(parts[0]), _str(parts[1]), _str(parts[2])
            else:
                details_text = detail
    text = internal_text or details_text or message
    exception_type = internal_type or details_type or exception_type_header
    return ErrorInfo(code, error_id, exception_type, text, True, message)


def _gunzip(data: bytes, limit: int = 2**20) -> bytes:
    """Inflate a gzip error body (bounded); a body that only looks gzipped is returned as it came."""
    try:
        inflater = zlib.decompressobj(wbits=31)
        out = inflater.decompress(data, limit)
    except zlib.error:
        return data
    return out


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def classify_error(
    status: int,
    info: ErrorInfo,
    *,
    cmdlet: str,
    request_id: str | None,
    retry_after: float | None,
    parameters: Iterable[str] = (),
) -> ExchangeError:
    """Map an HTTP status and its error envelope to the typed exception an administrator can act on.

    `parameters`: the names of the parameters sent, so a 403 names the Exchange role that call needs."""
    text = info.text or ""
    lowered = f"{text} {info.message or ''}".lower()
    exception_type = info.exception_type or ""
    kwargs: dict[str, Any] = {
        "cmdlet": cmdlet,
        "status": status,
        "detail": shorten(text, 500) or None,
        "exception_type": info.exception_type,
        "request_id": request_id,
    }
    if "maximum number of concurrent requests" in lowered:
        return ExchangeThrottled("too many concurrent requests for this tenant", retry_after=retry_after, **kwargs)
    if status == 429:
        return ExchangeThrottled("throttled by Exchange Online", retry_after=retry_after, **kwargs)
    if status == 408:
        return ExchangeTransportError("the server timed out waiting for the request", **kwargs)
    if status == 401:
        return ExchangeAuthError("the token was not accepted", **kwargs)
    retention = "unifiedauditlogretentionpolicy" in cmdlet.lower()
    if status == 403:
        detail = "" if info.readable else " (the answer had no readable body, as Exchange does for missing roles)"
        if retention:
            purpose = "to read the policies" if cmdlet.lower().startswith("get-") else "to create or change a policy"
            kwargs["hint"] = RETENTION_ROLES_HINT.format(cmdlet=cmdlet, purpose=purpose)
            return ExchangePermissionError(
                f"access denied to {cmdlet}: the Purview role Organization Configuration is missing (a Security & "
                f"Compliance role group, or the Entra role Compliance Data Administrator or Compliance "
                f"Administrator){detail}",
                **kwargs,
            )
        role = missing_role_hint(cmdlet, parameters)
        return ExchangePermissionError(f"access denied to {cmdlet}{detail}", role=role, **kwargs)
    if status == 404:
        return ExchangeNotFound("object not found", **kwargs)
    if "expired or invalid pagination request" in lowered:
        return PaginationExpired("the paging cursor expired", **kwargs)
    if "cmdlet needs proxy" in lowered or "CmdletProxyNotAvailable" in exception_type:
        return ExchangeProxyRequired("the cmdlet needs the audit-log anchor mailbox", **kwargs)
    if "InvalidOperationInDehydratedContext" in exception_type or "enable-organizationcustomization" in lowered:
        return TenantDehydrated("the tenant must be customised first", **kwargs)
    if retention and ("licens" in lowered or "licenc" in lowered):
        return ExchangeLicenceError(
            "Audit (Premium) licence required for this retention policy", hint=RETENTION_LICENCE_HINT, **kwargs
        )
    if "appropriate license" in lowered:
        return ExchangeLicenceError("licence required for an audit action", **kwargs)
    if 400 <= status < 500:
        return ExchangeBadRequest("bad request", **kwargs)
    return ExchangeServerError(f"server error {status}", **kwargs)
