"""A small Microsoft Graph v1.0 client (requests + an azure-identity credential) for grant-permissions.

The bearer token only ever goes to the configured Graph origin: redirects are not followed and an
`@odata.nextLink` to another scheme, host or port is refused. Errors carry Graph's `error.code` and
`error.message`, never a token. No retries: the one command that uses this is idempotent, run again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from shared.config.settings import origin
from shared.graph.errors import GraphAuthError, GraphError
from shared.redact import redact

if TYPE_CHECKING:  # azure-core's protocol, which every azure-identity credential meets; no import at run time
    from azure.core.credentials import TokenCredential

__all__ = ["GraphAuthError", "GraphClient", "GraphError", "parse_error"]

log = logging.getLogger("mailbox_audit_guard.graph")

HTTP_TIMEOUT = (10, 30)
MAX_PAGES = 50
_QUERY_SAFE = ",'()"


def parse_error(response: requests.Response, method: str, path: str) -> GraphError:
    """A GraphError from Graph's envelope `{"error": {"code", "message", "innerError": {"request-id"}}}`,
    or from the status line when the body is something else (HTML from a proxy, empty, ...)."""
    code, message, request_id = f"HTTP{response.status_code}", "", None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or "")
        inner = error.get("innerError") or error.get("innererror")
        if isinstance(inner, dict) and inner.get("request-id"):
            request_id = str(inner["request-id"])
    if not message:
        text = " ".join((response.text or "").split())[:200]
        message = text if text.isprintable() and text else (response.reason or "no error details")
    return GraphError(
        response.status_code,
        code,
        redact(message),
        method=method,
        path=path,
        request_id=request_id or response.headers.get("request-id"),
    )


class GraphClient:
    """GET/POST JSON against `{base_url}/v1.0` with a bearer token for `scope` from `credential`."""

    def __init__(
        self, base_url: str, credential: TokenCredential, scope: str, *, session: requests.Session | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api = f"{self.base_url}/v1.0"
        self.scope = scope
        self._credential = credential
        self._session = session or requests.Session()
        self._token: str | None = None

    def _bearer(self) -> str:
        if self._token is None:
            try:
                self._token = self._credential.get_token(self.scope).token
            except Exception as exc:  # azure-identity raises ClientAuthenticationError and friends
                detail = redact(" ".join(str(exc).split()))
                detail = detail if len(detail) <= 800 else detail[:800] + " …"
                raise GraphAuthError(
                    f"Could not get a Microsoft Graph token ({type(exc).__name__}). Sign in first, as a Privileged "
                    "Role Administrator (or Global Administrator) of the Microsoft 365 tenant: `az login --tenant "
                    f"<tenant id>`. Details: {detail}"
                ) from None
        return f"Bearer {self._token}"

    def _send(self, method: str, url: str, path: str, body: Any = None) -> dict[str, Any]:
        headers = {"Authorization": self._bearer(), "Accept": "application/json"}
        log.debug("Graph %s %s", method, path)
        try:
            response = self._session.request(
                method, url, json=body, headers=headers, timeout=HTTP_TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise GraphError(None, type(exc).__name__, redact(str(exc))[:300], method=method, path=path) from None
        if response.status_code >= 300:
            raise parse_error(response, method, path)
        try:
            document = response.json()
        except ValueError:
            raise GraphError(
                response.status_code, "InvalidResponse", "the answer is not JSON", method=method, path=path
            ) from None
        if not isinstance(document, dict):
            raise GraphError(
                response.status_code, "InvalidResponse", "the answer is not a JSON object", method=method, path=path
            )
        return document

    def url(self, path: str, query: dict[str, str] | None = None) -> str:
        """`/servicePrincipals/x` + {"$filter": "a eq 'b'"} -> .../v1.0/servicePrincipals/x?$filter=a%20eq%20'b'.

        Built by hand: spaces must be %20 (Graph reads `+` in $filter literally), and `$` stays readable."""
        text = self.api + path
        if query:
            text += "?" + "&".join(f"{name}={quote(value, safe=_QUERY_SAFE)}" for name, value in query.items())
        return text

    def get(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        return self._send("GET", self.url(path, query), path)

    def get_all(self, path: str, query: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a collection, following `@odata.nextLink` on the same origin only."""
        items: list[dict[str, Any]] = []
        url: str | None = self.url(path, query)
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= MAX_PAGES:
                raise GraphError(
                    None, "PagingLoop", "the collection's next links repeat or never end", method="GET", path=path
                )
            seen.add(url)
            page = self._send("GET", url, path)
            value = page.get("value")
            if not isinstance(value, list):
                raise GraphError(200, "InvalidResponse", "the collection has no 'value' list", method="GET", path=path)
            items += [item for item in value if isinstance(item, dict)]
            url = page.get("@odata.nextLink")
            if url is not None and not self._same_origin(str(url)):
                raise GraphError(
                    None,
                    "ForeignNextLink",
                    "a next link points at another host; refused (the token only goes to the Graph endpoint)",
                    method="GET",
                    path=path,
                )
        return items

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", self.url(path), path, body)

    def _same_origin(self, url: str) -> bool:
        return origin(url) == origin(self.base_url)
