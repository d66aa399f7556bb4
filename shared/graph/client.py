"""A small Microsoft Graph client (requests + a token source) for grant-permissions and the audit log search.

The bearer token only ever goes to the configured Graph origin: redirects are not followed and an
`@odata.nextLink` to another scheme, host or port is refused. Errors carry Graph's `error.code` and
`error.message`, never a token. Tokens come from an azure-identity credential (grant-permissions: the signed-in
administrator) or from the app's own TokenProvider (search: the app's identity). Retries only with a RetryPolicy
(the search): throttling (429 with Retry-After), 503/504 and transport failures, within the policy's deadline;
grant-permissions passes none, as it is idempotent and is simply run again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
import tenacity

from shared.config.settings import origin
from shared.exchange.client import DeadlineStop, RetryPolicy, retry_after_or_backoff, retry_after_seconds
from shared.graph.errors import GraphAuthError, GraphError
from shared.redact import redact

if TYPE_CHECKING:  # azure-core's protocol, which every azure-identity credential meets; no import at run time
    from azure.core.credentials import TokenCredential

    from shared.exchange.auth import TokenProvider

__all__ = ["GraphAuthError", "GraphClient", "GraphError", "parse_error"]

log = logging.getLogger("mailbox_audit_guard.graph")

HTTP_TIMEOUT = (10, 30)
MAX_PAGES = 50
_QUERY_SAFE = ",'()"
RETRYABLE = frozenset({429, 502, 503, 504})
SIGN_IN_HINT = (
    "Sign in first, as a Privileged Role Administrator (or Global Administrator) of the Microsoft 365 tenant: "
    "`az login --tenant <tenant id>`."
)


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
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


class GraphClient:
    """GET/POST JSON against `{base_url}/{version}` with a bearer token for `scope`: from `credential` (an
    azure-identity credential) or from `tokens` (the app's own TokenProvider, which can also be told to refresh)."""

    def __init__(
        self,
        base_url: str,
        credential: TokenCredential | None,
        scope: str,
        *,
        session: requests.Session | None = None,
        tokens: TokenProvider | None = None,
        version: str = "v1.0",
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        sign_in_hint: str = SIGN_IN_HINT,
    ) -> None:
        if (credential is None) == (tokens is None):
            raise ValueError("GraphClient needs exactly one of credential and tokens")
        self.base_url = base_url.rstrip("/")
        self.version = version
        self.api = f"{self.base_url}/{version}"
        self.scope = scope
        self.policy = policy
        self.requests_sent = 0
        self._credential = credential
        self._tokens = tokens
        self._session = session or requests.Session()
        self._sleep = sleep
        self._sign_in_hint = sign_in_hint
        self._token: str | None = None

    def _bearer(self) -> str:
        if self._token is None:
            try:
                if self._tokens is not None:
                    self._token = self._tokens.get_token()
                else:
                    assert self._credential is not None
                    self._token = self._credential.get_token(self.scope).token
            except Exception as exc:  # azure-identity raises ClientAuthenticationError, our providers TokenError
                detail = redact(" ".join(str(exc).split()))
                detail = detail if len(detail) <= 800 else detail[:800] + " …"
                raise GraphAuthError(
                    f"Could not get a Microsoft Graph token ({type(exc).__name__}). {self._sign_in_hint} "
                    f"Details: {detail}"
                ) from None
        return f"Bearer {self._token}"

    def _send(self, method: str, url: str, path: str, body: Any = None) -> dict[str, Any]:
        """One request, with the policy's retries when there is a policy."""
        if self.policy is None:
            return self._attempt(method, url, path, body)
        policy = self.policy
        stop = DeadlineStop(policy.max_attempts, policy.deadline_seconds)

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, GraphError) and (exc.status is None or exc.status in RETRYABLE)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "Graph %s %s: attempt %d failed (%s); retrying in %.1f s",
                method,
                path,
                state.attempt_number,
                getattr(exc, "code", None) or type(exc).__name__,
                state.upcoming_sleep,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            stop=stop,
            wait=retry_after_or_backoff(policy, GraphError),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, url, path, body)
        except GraphError as exc:
            if stop.out_of_time and retryable(exc):
                exc.message = f"{exc.message} (gave up: retrying would pass {policy.deadline_seconds:g} s)"
                exc.args = (f"Graph {method} {path} answered {exc.status} {exc.code}: {exc.message}",)
            raise

    def _attempt(self, method: str, url: str, path: str, body: Any) -> dict[str, Any]:
        """One try; a 401 with a token of our own gets one fresh token and one more try."""
        response = self._request(method, url, path, body)
        if response.status_code == 401 and self._tokens is not None:
            log.info("Graph %s %s: token rejected (401); fetching a new token and trying once more", method, path)
            self._tokens.invalidate()
            self._token = None
            response = self._request(method, url, path, body)
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

    def _request(self, method: str, url: str, path: str, body: Any) -> requests.Response:
        if not self._same_origin(url):  # a link built or followed elsewhere never gets the token
            raise GraphError(None, "ForeignUrl", "refused to send the token to another host", method=method, path=path)
        headers = {"Authorization": self._bearer(), "Accept": "application/json"}
        log.debug("Graph %s %s", method, path)
        self.requests_sent += 1
        try:
            return self._session.request(
                method, url, json=body, headers=headers, timeout=HTTP_TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise GraphError(None, type(exc).__name__, redact(str(exc))[:300], method=method, path=path) from None

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
        return [item for page in self.pages(path, query) for item in page]

    def pages(
        self, path: str, query: dict[str, str] | None = None, *, max_pages: int = MAX_PAGES
    ) -> Iterator[list[dict[str, Any]]]:
        """A collection page by page (only one page in memory), following `@odata.nextLink` on the same origin
        only; a link that repeats, or more than `max_pages` pages, is a paging loop."""
        url: str | None = self.url(path, query)
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= max_pages:
                raise GraphError(
                    None, "PagingLoop", "the collection's next links repeat or never end", method="GET", path=path
                )
            seen.add(url)
            page = self._send("GET", url, path)
            value = page.get("value")
            if not isinstance(value, list):
                raise GraphError(200, "InvalidResponse", "the collection has no 'value' list", method="GET", path=path)
            next_link = page.get("@odata.nextLink")
            if next_link is not None and not self._same_origin(str(next_link)):
                raise GraphError(
                    None,
                    "ForeignNextLink",
                    "a next link points at another host; refused (the token only goes to the Graph endpoint)",
                    method="GET",
                    path=path,
                )
            yield [item for item in value if isinstance(item, dict)]
            url = None if next_link is None else str(next_link)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", self.url(path), path, body)

    def _same_origin(self, url: str) -> bool:
        return origin(url) == origin(self.base_url)
