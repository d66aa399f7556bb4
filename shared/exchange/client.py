"""Client for the Exchange Online admin REST endpoint (`InvokeCommand`): headers, paging, retries, errors.

It knows the wire protocol only; what the cmdlets mean for auditing lives in `collect` and `remediation`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import tenacity
import urllib3

from shared import __version__
from shared.config.settings import origin
from shared.exchange.auth import TokenError, TokenProvider
from shared.exchange.errors import (
    ExchangeAuthError,
    ExchangeDeadlineExceeded,
    ExchangeError,
    ExchangeIncompleteRead,
    ExchangeProtocolError,
    ExchangeRedirect,
    ExchangeServerError,
    ExchangeThrottled,
    ExchangeTransportError,
    PaginationExpired,
    classify_error,
    parse_error_body,
    parse_error_object,
    status_for_code,
)

log = logging.getLogger("mailbox_audit_guard.exchange")

ORGANIZATION_ANCHOR_GUID = "bb558c35-97f1-4cb9-8ff7-d53741dc928c"  # the "Microsoft Exchange" system mailbox
AUDIT_LOG_ANCHOR_GUID = "8cc370d3-822a-4ab8-a926-bb94bd0641a9"  # the audit-log arbitration mailbox
MAX_PAGE_SIZE = 1000
RETRYABLE_STATUSES = frozenset({408, 502, 503, 504})
READ_CHUNK_BYTES = 256 * 1024
MAX_BODY_BYTES = 64 * 2**20  # a page of 1,000 mailboxes is a few MiB
MAX_REDIRECTS = 3
GZIP_MAGIC = b"\x1f\x8b"
# Exchange repeats this on every page that has a nextLink (exchange-admin-api.md §10.7): paging, not truncation.
MORE_RESULTS_WARNING = (
    "There are more results available than are currently displayed. To view them, increase the value for the "
    "ResultSize parameter."
)


def new_session() -> requests.Session:
    """The HTTP session a client opens when it is given none: a plain requests.Session.

    Built in one place so the tests can mount the emulator's in-process transport (emulator/transport.py) on
    every client the service opens, running the whole CLI in process; nothing in `shared` replaces it.
    """
    return requests.Session()


def retry_after_or_backoff(
    policy: RetryPolicy, throttled: type[BaseException]
) -> Callable[[tenacity.RetryCallState], float]:
    """The wait before a retry: the server's Retry-After on a `throttled` error (its `retry_after`), else
    exponential backoff with full jitter. Shared by the Exchange and the Management Activity API clients."""
    backoff = tenacity.wait_random_exponential(multiplier=policy.backoff_base_seconds, max=policy.backoff_cap_seconds)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None) if isinstance(exc, throttled) else None
        return float(retry_after) if isinstance(retry_after, int | float) else float(backoff(state))

    return wait


class DeadlineStop:
    """When to stop retrying: after the policy's attempts, when `exhausted()` says so (a request budget), or when
    the next wait would end past `allowed` seconds: a Retry-After or backoff that would outlast the deadline fails
    now instead of sleeping, and `out_of_time` says so, for a message about the deadline rather than the error."""

    def __init__(self, max_attempts: int, allowed: float, exhausted: Callable[[], bool] = lambda: False) -> None:
        self.max_attempts = max_attempts
        self.allowed = allowed
        self.exhausted = exhausted
        self.out_of_time = False

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.max_attempts or self.exhausted():
            return True
        self.out_of_time = (state.seconds_since_start or 0.0) + (state.upcoming_sleep or 0.0) >= self.allowed
        return self.out_of_time


def system_anchor(mailbox_guid: str, tenant_id: str) -> str:
    """The X-AnchorMailbox value that routes an app-only call to a tenant system mailbox."""
    return f"APP:SystemMailbox{{{mailbox_guid}}}@{tenant_id}"


@dataclass(frozen=True)
class Page:
    """One page of a cmdlet's answer, sidecar keys removed.

    `restarted` is True on the first page of a query that had to start again (expired cursor): whoever
    accumulates pages must then discard what the earlier pages of the same query gave. `errors` are the texts of
    a non-empty `@adminapi.errors` (non-terminating errors next to the rows): a read with any is incomplete.
    The "more results available" warning is removed from pages that have a nextLink (it is paging there).
    """

    rows: list[dict[str, Any]]
    warnings: list[str]
    number: int
    restarted: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class CmdletResult:
    """Every row and warning of a cmdlet call, for answers small enough to hold at once.

    `errors` are `@adminapi.errors` texts of a write (a read with any raises ExchangeIncompleteRead); they are
    also in `warnings`, so the write's evidence shows them while the read-back decides the outcome.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request. Defaults follow exchange-admin-api.md §3.4."""

    max_attempts: int = 5
    deadline_seconds: float = 60.0
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 60.0
    connect_timeout_seconds: float = 10.0


class ExchangeClient:
    """Runs cmdlets through `POST {endpoint}/adminapi/beta/{tenant}/InvokeCommand` with an app-only token.

    The bearer token is only ever sent to `endpoint` (scheme, host and port compared exactly), or to the one
    host a redirect pinned: an https host inside the configured host's domain (exchange-admin-api.md §10.8).
    """

    def __init__(
        self,
        endpoint: str,
        tenant_id: str,
        tokens: TokenProvider,
        *,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        run_deadline: float | None = None,
        page_size: int = MAX_PAGE_SIZE,
        on_payload: Callable[[str, int, Mapping[str, Any]], None] | None = None,
        default_anchor: str | None = None,
        cmdlets: frozenset[str] | None = None,
        endpoint_setting: str = "EXO_ENDPOINT",
        redirect_host: Callable[[str, int | None], tuple[str, int | None]] | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.tenant_id = tenant_id
        self.default_anchor = default_anchor or system_anchor(ORGANIZATION_ANCHOR_GUID, tenant_id)
        # The only cmdlets this client sends (lower-case); None: any. The Security & Compliance client is limited
        # to its own cmdlets, so a value that must be read on Exchange can never be read there (controls.md §4).
        self.cmdlets = frozenset(name.lower() for name in cmdlets) if cmdlets is not None else None
        self.endpoint_setting = endpoint_setting  # named in the messages that say how to point the client elsewhere
        # Maps a redirect's (host, port) to the one to use (Security & Compliance names its region on another
        # host, activity-feed.md §6.1); the domain and pinning rules then apply to the result.
        self.redirect_host = redirect_host
        self.invoke_url = f"{self.endpoint}/adminapi/beta/{tenant_id}/InvokeCommand"
        self.policy = policy or RetryPolicy()
        self.requests_sent = 0
        self._tokens = tokens
        self._session = session or new_session()
        self._sleep = sleep
        self._connection_id = str(uuid.uuid4())
        self._origin = origin(self.endpoint)
        self._home = self._origin  # the configured endpoint's (scheme, host, port): redirects stay inside its domain
        self.pinned_host: str | None = None  # the host a redirect moved this client to, for the rest of the run
        # time.monotonic() by which the whole run must be done (below the function timeout); None: no limit.
        self.run_deadline = run_deadline
        # Rows per page asked for (`Prefer: odata.maxpagesize`); `diagnose` asks for tiny pages to prove paging.
        self.page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        # Sees each page's parsed JSON (cmdlet, page number, body) before it is read: `diagnose` records body shapes.
        self.on_payload = on_payload

    def close(self) -> None:
        self._session.close()
        close_tokens = getattr(self._tokens, "close", None)
        if close_tokens is not None:
            close_tokens()

    # -- public API -------------------------------------------------------------------------------------------

    def pages(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        select: Sequence[str] = (),
        anchor: str | None = None,
    ) -> Iterator[Page]:
        """Yield the answer page by page as it arrives, following `@odata.nextLink` to the end.

        An expired cursor restarts the query once (the restarted first page says so); a nextLink to another
        host, or one seen before, stops with ExchangeProtocolError.
        """
        if self.cmdlets is not None and cmdlet.lower() not in self.cmdlets:
            raise ExchangeProtocolError(
                f"this client does not send {cmdlet} to {self.endpoint}: it is read or written on another endpoint",
                cmdlet=cmdlet,
                hint="Nothing was sent.",
            )
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": dict(parameters or {})}}
        query = f"?$select={','.join(select)}" if select else ""
        # The same anchor on every page: a cursor may be bound to the back end the anchor routes to (§10.2).
        headers = {"X-AnchorMailbox": anchor or self.default_anchor, "X-CmdletName": cmdlet}
        restarted = False
        while True:
            url: str | None = self.invoke_url + query  # built here: a redirect may have pinned another host
            seen: set[str] = set()
            number = 0
            try:
                while url:
                    if url in seen:
                        raise ExchangeProtocolError(
                            "the server sent a nextLink it had sent before (a paging loop); the result is incomplete",
                            cmdlet=cmdlet,
                        )
                    seen.add(url)
                    payload = self._send(url, body, headers, cmdlet)
                    number += 1
                    if self.on_payload is not None:
                        self.on_payload(cmdlet, number, payload)
                    rows = _rows(payload, cmdlet)
                    warnings = _warnings(payload)
                    next_url = self._next_url(payload, cmdlet)
                    if next_url:
                        warnings = [w for w in warnings if not _is_more_results(w)]
                    errors = _adminapi_errors(payload)
                    yield Page(rows, warnings, number, restarted and number == 1, errors)
                    url = next_url
                return
            except PaginationExpired:
                if restarted or number == 0:
                    raise
                restarted = True
                log.warning("%s: paging cursor expired after %d pages; restarting the query once", cmdlet, number)

    def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        select: Sequence[str] = (),
        anchor: str | None = None,
    ) -> CmdletResult:
        """Run a cmdlet and collect its whole answer (for small answers such as configuration objects).

        A read (Get-*) whose answer carried `@adminapi.errors` raises ExchangeIncompleteRead (fail closed); a
        write keeps the texts as warnings and errors, and the read-back decides whether it took effect.
        """
        result = CmdletResult()
        for page in self.pages(cmdlet, parameters, select=select, anchor=anchor):
            if page.restarted:
                result = CmdletResult()
            result.rows.extend(page.rows)
            result.warnings.extend(page.warnings)
            result.errors.extend(page.errors)
        if result.errors:
            if is_read(cmdlet):
                raise ExchangeIncompleteRead(
                    "Exchange answered with rows and errors, so the read is incomplete",
                    cmdlet=cmdlet,
                    status=200,
                    detail=_joined(result.errors),
                )
            result.warnings.extend(f"Exchange reported an error: {text}" for text in result.errors)
        return result

    # -- one request, with retries -------------------------------------------------------------------------------

    def _send(self, url: str, body: dict[str, Any], headers: Mapping[str, str], cmdlet: str) -> dict[str, Any]:
        """POST one page, retrying what is worth retrying within the policy's attempts and deadline."""
        policy = self.policy
        started = time.monotonic()
        allowed = policy.deadline_seconds
        if self.run_deadline is not None:
            allowed = min(allowed, self.run_deadline - started)
            if allowed <= 0:
                raise ExchangeDeadlineExceeded(
                    "the run's time budget is used up; nothing more was sent",
                    cmdlet=cmdlet,
                    hint="Raise AUDIT_RUN_DEADLINE_SECONDS if the "
                    "tenant is large, or find out why Exchange answers slowly.",
                )
        deadline = started + allowed
        server_errors_seen = 0

        def retryable(exc: BaseException) -> bool:
            nonlocal server_errors_seen
            if isinstance(exc, (ExchangeThrottled, ExchangeTransportError)):
                return True
            if isinstance(exc, ExchangeServerError):
                if exc.status in RETRYABLE_STATUSES:
                    return True
                server_errors_seen += 1
                return server_errors_seen == 1  # a plain 500: once (writes are idempotent, so safe)
            return False

        wait = retry_after_or_backoff(policy, ExchangeThrottled)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.1f s",
                cmdlet,
                state.attempt_number,
                type(exc).__name__,
                state.upcoming_sleep,
            )

        stop = DeadlineStop(policy.max_attempts, allowed)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            stop=stop,
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, url, body, headers, cmdlet, deadline)
        except ExchangeError as exc:
            if not stop.out_of_time:
                raise
            raise ExchangeDeadlineExceeded(
                f"gave up after {time.monotonic() - started:.1f} s of {allowed:.0f} s allowed; "
                f"the last attempt said: {exc.summary}",
                cmdlet=cmdlet,
                status=exc.status,
                detail=exc.detail,
                request_id=exc.request_id,
            ) from None

    def _attempt(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str], cmdlet: str, deadline: float
    ) -> dict[str, Any]:
        """One try; a 401 gets one fresh token and one immediate retry before it counts as an auth error."""
        response_status, content, response = self._post_following(url, body, headers, cmdlet, deadline)
        if response_status == 401:
            log.info("%s: token rejected (401); fetching a new token and trying once more", cmdlet)
            self._tokens.invalidate()
            response_status, content, response = self._post_following(url, body, headers, cmdlet, deadline)
        request_id = response.request.headers.get("client-request-id") if response.request else None
        if response_status == 200:
            try:
                payload = json.loads(content.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise ExchangeProtocolError(
                    "HTTP 200 with a body that is not JSON", cmdlet=cmdlet, request_id=request_id
                ) from None
            if not isinstance(payload, dict):
                raise ExchangeProtocolError(
                    "HTTP 200 with a JSON body that is not an object", cmdlet=cmdlet, request_id=request_id
                )
            self._raise_error_inside_200(payload, response, cmdlet, request_id, _parameter_names(body))
            return payload
        error = classify_error(
            response_status,
            parse_error_body(content, response.headers.get("X-ExceptionType")),
            cmdlet=cmdlet,
            request_id=request_id,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            parameters=_parameter_names(body),
        )
        if isinstance(error, ExchangeAuthError):
            error.summary = "the token was not accepted, also after fetching a new one"
            error.args = (error._render(),)
        raise error

    def _raise_error_inside_200(
        self,
        payload: Mapping[str, Any],
        response: requests.Response,
        cmdlet: str,
        request_id: str | None,
        parameters: Sequence[str] = (),
    ) -> None:
        """A 200 whose body carries `error` or `@odata.error` failed: classify it as the same envelope on a 4xx/5xx
        would be (so a dehydrated 200 is TenantDehydrated), reporting HTTP 200 (exchange-admin-api.md §10.5)."""
        for key in ("error", "@odata.error"):
            envelope = payload.get(key)
            if envelope in (None, "", {}, []):
                continue
            if not isinstance(envelope, dict):
                raise ExchangeProtocolError(
                    f"HTTP 200 whose '{key}' is not an error object; nothing was concluded from it",
                    cmdlet=cmdlet,
                    request_id=request_id,
                )
            info = parse_error_object(envelope, response.headers.get("X-ExceptionType"))
            error = classify_error(
                status_for_code(info.code),
                info,
                cmdlet=cmdlet,
                request_id=request_id,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                parameters=parameters,
            )
            error.status = 200  # rendered "(HTTP 200)": the answer said success, its body said otherwise
            error.args = (error._render(),)
            raise error

    def _post_following(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str], cmdlet: str, deadline: float
    ) -> tuple[int, bytes, requests.Response]:
        """POST, following a 3xx only inside the configured Exchange domain (the same body and headers again)."""
        url = self._on_pinned_host(url)
        status, content, response = self._post(url, body, headers, cmdlet, deadline)
        hops = 0
        while 300 <= status < 400:
            hops += 1
            url = self._redirect_target(url, response.headers.get("Location"), status, cmdlet, hops)
            status, content, response = self._post(url, body, headers, cmdlet, deadline)
        return status, content, response

    def _on_pinned_host(self, url: str) -> str:
        """A URL built for the configured host, moved to the pinned one (a retry or a 401 retry after a redirect)."""
        if self.pinned_host is None or origin(url) != self._home:
            return url
        parts = urlsplit(url)
        return urlunsplit(("https", urlsplit(self.endpoint).netloc, parts.path, parts.query, ""))

    def _redirect_target(self, url: str, location: str | None, status: int, cmdlet: str, hops: int) -> str:
        """Where a redirect may take the request, pinning that host; ExchangeRedirect for any other redirect.

        Allowed: https, a host equal to or under the configured endpoint's host (e.g. eur02b.outlook.office365.com
        for outlook.office365.com), the configured port (a redirect to :446 means :443, as clients do), and, once
        a host is pinned, only that host.
        """
        if not location:
            raise ExchangeRedirect(f"HTTP {status} without a Location", cmdlet=cmdlet, status=status)
        target = urljoin(url, location.strip())
        parts = urlsplit(target)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            port = -1
        _, home_host, home_port = self._home
        if port in (None, 446):
            port = 443
        if self.redirect_host is not None and host:
            host, port = self.redirect_host(host, port)
        problem = None
        if hops > MAX_REDIRECTS:
            problem = f"more than {MAX_REDIRECTS} redirects in a row"
        elif parts.scheme.lower() != "https":
            problem = "the redirect is not https"
        elif not host or not (host == home_host or (not _is_ip(home_host) and host.endswith("." + home_host))):
            problem = f"{host or 'the target'} is outside the configured Exchange domain ({home_host})"
        if problem is None and port != home_port:
            problem = f"the redirect names port {port}, not {home_port}"
        if problem is None and self.pinned_host is not None and host != self.pinned_host:
            problem = f"this run is already pinned to {self.pinned_host}"
        if problem is not None:
            raise ExchangeRedirect(
                f"Exchange redirected to {host or location} (HTTP {status}); not followed: {problem}",
                cmdlet=cmdlet,
                status=status,
                location_host=host or None,
                hint=ExchangeRedirect.hint.replace("EXO_ENDPOINT", self.endpoint_setting),
            )
        netloc = host if port == 443 else f"{host}:{port}"
        target = urlunsplit(("https", netloc, parts.path, parts.query, ""))
        if host != home_host or self.pinned_host is not None:
            if self.pinned_host is None:
                log.warning("%s: Exchange redirected this tenant to %s; using it for the rest of the run", cmdlet, host)
            self.pinned_host = host
            self.endpoint = f"https://{netloc}"
            self.invoke_url = f"{self.endpoint}/adminapi/beta/{self.tenant_id}/InvokeCommand"
            self._origin = origin(self.endpoint)
        return target

    def _post(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str], cmdlet: str, deadline: float
    ) -> tuple[int, bytes, requests.Response]:
        self._require_exchange_origin(url, cmdlet)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExchangeDeadlineExceeded("no time left for another attempt", cmdlet=cmdlet)
        try:
            token = self._tokens.get_token()
        except TokenError as exc:
            raise ExchangeAuthError(str(exc), cmdlet=cmdlet, hint="No request was sent to Exchange.") from None
        request_headers = {
            **headers,
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "Prefer": f"odata.maxpagesize={self.page_size}",
            "X-ResponseFormat": "json",
            "client-request-id": str(uuid.uuid4()),
            "connection-id": self._connection_id,
            "X-ClientApplication": f"MailboxAuditGuard/{__version__}",
            "User-Agent": f"MailboxAuditGuard/{__version__}",
        }
        timeout = (min(self.policy.connect_timeout_seconds, remaining), remaining)
        self.requests_sent += 1
        try:
            response = self._session.post(
                url,
                data=json.dumps(body).encode("utf-8"),
                headers=request_headers,
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
            try:
                content = read_body(response, deadline, cmdlet)
            finally:
                response.close()
        except requests.Timeout:
            raise ExchangeTransportError(f"no answer within {remaining:.0f} s", cmdlet=cmdlet) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:  # raw reads raise urllib3's own
            raise ExchangeTransportError(f"connection failed ({type(exc).__name__})", cmdlet=cmdlet) from None
        return response.status_code, content, response

    # -- paging safety -----------------------------------------------------------------------------------------

    def _next_url(self, payload: Mapping[str, Any], cmdlet: str) -> str | None:
        link = payload.get("@odata.nextLink")
        if link in (None, ""):
            return None
        if not isinstance(link, str):
            raise ExchangeProtocolError("the nextLink is not a string; the result is incomplete", cmdlet=cmdlet)
        url = urljoin(self.invoke_url, link)
        self._require_exchange_origin(url, cmdlet)
        return url

    def _require_exchange_origin(self, url: str, cmdlet: str) -> None:
        """Refuse any URL whose scheme, host or port is not the endpoint's (the configured one, or the host a
        redirect pinned): the token stays home."""
        if origin(url) != self._origin:
            parts = urlsplit(url)
            raise ExchangeProtocolError(
                f"refused to follow a link to {parts.scheme}://{parts.netloc}: the token is only sent to "
                f"{self.endpoint}; the result is incomplete",
                cmdlet=cmdlet,
            )


def read_body(response: requests.Response, deadline: float, cmdlet: str) -> bytes:
    """The raw body, read in chunks so a trickling server cannot outlast the deadline and a huge or
    decompression-bomb body cannot exhaust memory. It is inflated only when it starts with the gzip magic bytes:
    Exchange labels NUL-byte 403 bodies gzip, and those are returned as they came (§10.9)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.raw.read(READ_CHUNK_BYTES, decode_content=False):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ExchangeProtocolError(f"the answer is larger than {MAX_BODY_BYTES // 2**20} MiB", cmdlet=cmdlet)
        if time.monotonic() > deadline:
            raise ExchangeTransportError("the answer arrived too slowly to finish within the deadline", cmdlet=cmdlet)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        inflater = zlib.decompressobj(wbits=31)
        body = inflater.decompress(raw, MAX_BODY_BYTES + 1)
    except zlib.error:
        return raw
    if len(body) > MAX_BODY_BYTES or inflater.unconsumed_tail:
        raise ExchangeProtocolError(f"the answer inflates beyond {MAX_BODY_BYTES // 2**20} MiB", cmdlet=cmdlet)
    return body


def is_read(cmdlet: str) -> bool:
    """Get-* cmdlets read; everything else (Set-*, Enable-*) writes."""
    return cmdlet.lower().startswith("get-")


def _parameter_names(body: Mapping[str, Any]) -> list[str]:
    """The names of the parameters a request body sends (for a 403's role hint); never their values."""
    cmdlet_input = body.get("CmdletInput")
    parameters = cmdlet_input.get("Parameters") if isinstance(cmdlet_input, dict) else None
    return [str(name) for name in parameters] if isinstance(parameters, dict) else []


def _is_ip(host: str) -> bool:
    return host.replace(".", "").isdigit() or ":" in host


def _is_more_results(warning: str) -> bool:
    return " ".join(warning.split()).lower() == MORE_RESULTS_WARNING.lower()


def _joined(texts: list[str], limit: int = 5) -> str:
    shown = "; ".join(texts[:limit])
    return shown + (f" (and {len(texts) - limit} more)" if len(texts) > limit else "")


def _adminapi_errors(payload: Mapping[str, Any]) -> list[str]:
    """The texts of `@adminapi.errors` (strings, or objects with a message); [] when absent or empty."""
    errors = payload.get("@adminapi.errors")
    if errors in (None, "", [], {}):
        return []
    items = errors if isinstance(errors, list) else [errors]
    texts = []
    for item in items:
        if isinstance(item, dict):
            text = next((str(item[k]) for k in ("message", "Message", "text") if item.get(k)), json.dumps(item))
        else:
            text = str(item)
        texts.append(text or "(an empty error)")
    return texts


def _rows(payload: Mapping[str, Any], cmdlet: str) -> list[dict[str, Any]]:
    """The rows of a 200 whose error checks passed: an absent or null `value` is zero rows (§10.1)."""
    value = payload.get("value", [])
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise ExchangeProtocolError("the answer has no list of objects in 'value'", cmdlet=cmdlet)
    # "@" keys are type sidecars (AuditAdmin@odata.type, Guid@data.type), never data.
    return [{k: v for k, v in row.items() if "@" not in k} for row in value]


def _warnings(payload: Mapping[str, Any]) -> list[str]:
    warnings = payload.get("@adminapi.warnings") or []
    return [str(w) for w in warnings] if isinstance(warnings, list) else [str(warnings)]


def retry_after_seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None
