"""Client for the Office 365 Management Activity API (`{base}/api/v1.0/{tenant}/activity/feed/…`).

It knows the wire protocol only (activity-feed.md §1): subscriptions, content listings with `NextPageUri`, content
blobs, the AF error codes, throttling. Checkpoints, de-duplication and record parsing live above it.

Safety: the bearer token only goes to the configured base URL's origin (scheme, host and port compared exactly);
a `NextPageUri` or `contentUri` anywhere else is refused before anything is sent to it. Every call carries
`PublisherIdentifier`. The client counts its requests: past `request_budget` (or the run deadline) nothing more is
sent and FeedBudgetExceeded says so.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
import tenacity
import urllib3

from shared import __version__
from shared.activity.errors import (
    ALREADY_ENABLED,
    NEXT_PAGE_INVALID,
    PERMISSION,
    FeedAuthError,
    FeedBudgetExceeded,
    FeedError,
    FeedNoSubscription,
    FeedProtocolError,
    FeedRequestError,
    FeedServerError,
    FeedThrottled,
    FeedTransportError,
    FeedWindowError,
    classify,
    parse_error_body,
)
from shared.config.loader import CONTENT_TYPES, FeedSettings
from shared.config.settings import Settings, check_base_url, origin
from shared.exchange.auth import TokenError, TokenProvider, token_provider_for
from shared.exchange.client import (
    DeadlineStop,
    RetryPolicy,
    new_session,
    read_body,
    retry_after_or_backoff,
    retry_after_seconds,
)
from shared.exchange.errors import ExchangeProtocolError, ExchangeTransportError

log = logging.getLogger("mailbox_audit_guard.activity")

MAX_WINDOW = timedelta(hours=24)  # a listing covers at most 24 hours (AF20055 beyond)
MAX_AGE = timedelta(days=7)  # and starts at most 7 days back (AF20056 / AF20055 beyond)
START_INTERVAL = timedelta(minutes=15)  # at most one subscription start per content type per 15 minutes
DEFAULT_REQUEST_BUDGET = 1000  # per client (one run); the tenant's quota is about 2,000 a minute (§1.4)
MAX_PAGES = 500  # pages of one listing; a server paging past this is treated as a loop
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
ALREADY_ENABLED_TEXT = "already enabled"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ContentRef:
    """One content blob as a listing named it. `created` is when the blob became available (the listing window
    filters on it), never when its events happened; `expiration` is when it can no longer be read (AF20051)."""

    content_type: str
    content_id: str
    content_uri: str
    created: datetime
    expiration: datetime | None


def check_window(start: datetime, end: datetime, now: datetime) -> str | None:
    """What is wrong with a listing window `[start, end)` at `now`, or None (activity-feed.md §1.3)."""
    if start.tzinfo is None or end.tzinfo is None or now.tzinfo is None:
        return "the window's times must carry a time zone (UTC)"
    if start >= end:
        return f"the start ({start:%Y-%m-%d %H:%M:%S}) is not before the end ({end:%Y-%m-%d %H:%M:%S})"
    if end - start > MAX_WINDOW:
        return f"the window spans {(end - start) / timedelta(hours=1):.1f} hours; at most 24 are allowed"
    if start < now - MAX_AGE:
        return f"the start ({start.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC) is more than 7 days back"
    return None


def parse_time(value: Any) -> datetime | None:
    """An API timestamp (`2015-05-23T17:35:00.000Z`; a value without a zone is UTC), or None when unusable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class FeedClient:
    """The feed of one tenant at `base_url` (e.g. https://manage.office.com), with an app-only token for it."""

    def __init__(
        self,
        base_url: str,
        tenant_id: str,
        tokens: TokenProvider,
        *,
        publisher_id: str | None = None,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utcnow,
        request_budget: int = DEFAULT_REQUEST_BUDGET,
        run_deadline: float | None = None,
    ) -> None:
        if (problem := check_base_url(base_url, allow_loopback_http=True)) is not None:
            raise ValueError(f"feed base URL {problem}")
        self.base_url = base_url.rstrip("/")
        self.tenant_id = tenant_id
        self.publisher_id = publisher_id or tenant_id
        self.root = f"{self.base_url}/api/v1.0/{tenant_id}/activity/feed"
        self.policy = policy or RetryPolicy()
        self.request_budget = request_budget
        self.requests_sent = 0
        # time.monotonic() by which the run must be done; None: no limit beyond the budget.
        self.run_deadline = run_deadline
        # Subscription starts this client made (content type -> when), for the caller's state store.
        self.started: dict[str, datetime] = {}
        self._last_start: dict[str, datetime] = {}
        self._subscriptions: dict[str, str] | None = None
        self._tokens = tokens
        self._session = session or new_session()
        self._sleep = sleep
        self._clock = clock
        self._origin = origin(self.base_url)

    def close(self) -> None:
        self._session.close()
        close_tokens = getattr(self._tokens, "close", None)
        if close_tokens is not None:
            close_tokens()

    @property
    def requests_left(self) -> int:
        return max(0, self.request_budget - self.requests_sent)

    # -- subscriptions ---------------------------------------------------------------------------------------------

    def subscriptions(self, *, refresh: bool = False) -> dict[str, str]:
        """Content type -> status (`enabled`, `disabled`, …) of this publisher's subscriptions, read once per client."""
        if self._subscriptions is None or refresh:
            payload = self._json("list", "GET", self._url("subscriptions/list"))
            if not isinstance(payload, list):
                raise FeedProtocolError("the subscription list is not a JSON array", operation="list")
            statuses: dict[str, str] = {}
            for item in payload:
                if isinstance(item, dict) and isinstance(item.get("contentType"), str):
                    statuses[item["contentType"]] = str(item.get("status") or "").lower()
            self._subscriptions = statuses
        return dict(self._subscriptions)

    def start_subscription(self, content_type: str) -> None:
        """`POST subscriptions/start`; "already enabled" (AF20024, an HTTP 400) is success."""
        _require_content_type(content_type)
        try:
            self._request("start", "POST", self._url("subscriptions/start", contentType=content_type))
        except FeedRequestError as exc:
            if exc.code != ALREADY_ENABLED and ALREADY_ENABLED_TEXT not in (exc.detail or "").lower():
                raise
            log.info("%s: the subscription was already enabled", content_type)
        if self._subscriptions is not None:
            self._subscriptions[content_type] = "enabled"

    def stop_subscription(self, content_type: str) -> None:
        """`POST subscriptions/stop` (content until the next start is lost; the watch never calls it)."""
        _require_content_type(content_type)
        self._request("stop", "POST", self._url("subscriptions/stop", contentType=content_type))
        if self._subscriptions is not None:
            self._subscriptions[content_type] = "disabled"

    def ensure_subscription(self, content_type: str, last_started: datetime | None, now: datetime) -> datetime | None:
        """Make sure `content_type` is subscribed; return the new start time if a start was sent, else None.

        `last_started` is the previous start the caller stored: within 15 minutes of it no start is sent again,
        and a subscription that is still not enabled raises FeedNoSubscription."""
        _require_content_type(content_type)
        if last_started is not None:
            self._last_start[content_type] = last_started
        status = self.subscriptions().get(content_type)
        if status == "enabled":
            return None
        if status == "disabled":
            log.warning("%s: the subscription is disabled (by a tenant or service admin); starting it", content_type)
        return self._start_if_allowed(content_type, now, status)

    def _start_if_allowed(self, content_type: str, now: datetime, status: str | None) -> datetime:
        last = self._last_start.get(content_type)
        if last is not None and now - last < START_INTERVAL:
            raise FeedNoSubscription(
                f"the {content_type} subscription is {status or 'not started'} and was started at "
                f"{last.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, less than 15 minutes ago; the next start is "
                f"allowed from {(last + START_INTERVAL).astimezone(UTC):%H:%M:%S} UTC",
                operation="start",
            )
        self.start_subscription(content_type)
        self._last_start[content_type] = now
        self.started[content_type] = now
        return now

    # -- content -----------------------------------------------------------------------------------------------------

    def list_content(self, content_type: str, start: datetime, end: datetime) -> Iterator[ContentRef]:
        """The blobs that became available in `[start, end)`, following `NextPageUri` to the end.

        The window is checked before anything is sent (FeedWindowError): at most 24 hours, starting at most 7 days
        back. A missing or disabled subscription (AF20022/AF20023) is started once, if the 15-minute rule allows,
        and the listing retried; a next page the server calls invalid (AF20031) restarts the listing once, so a
        blob may then be named twice (callers skip known content ids anyway)."""
        _require_content_type(content_type)
        if (problem := check_window(start, end, self._clock())) is not None:
            raise FeedWindowError(f"not sent: {problem}", operation="content")
        first = self._url(
            "subscriptions/content",
            contentType=content_type,
            startTime=start.astimezone(UTC).strftime(TIME_FORMAT),
            endTime=end.astimezone(UTC).strftime(TIME_FORMAT),
        )
        return self._listing(content_type, first)

    def _listing(self, content_type: str, first: str) -> Iterator[ContentRef]:
        restarted = subscribed = False
        while True:
            url: str | None = first
            seen: set[str] = set()
            pages = 0
            try:
                while url:
                    if url in seen or pages >= MAX_PAGES:
                        raise FeedProtocolError(
                            "the server's NextPageUri repeats or never ends (a paging loop); the listing is incomplete",
                            operation="content",
                        )
                    seen.add(url)
                    try:
                        status_headers, payload = self._json_with_headers("content", "GET", url)
                    except FeedNoSubscription:
                        if pages or subscribed:
                            raise
                        self._start_if_allowed(content_type, self._clock(), None)
                        subscribed = True
                        seen.discard(url)
                        continue
                    pages += 1
                    yield from self._refs(payload, content_type)
                    url = self._next_page(status_headers.get("NextPageUri") or status_headers.get("NextPageUrl"))
                return
            except FeedProtocolError as exc:
                if exc.code != NEXT_PAGE_INVALID or restarted or pages == 0:
                    raise
                restarted = True
                log.warning("%s: the API refused its own next page (AF20031); listing the window again", content_type)

    def _refs(self, payload: Any, content_type: str) -> Iterator[ContentRef]:
        if not isinstance(payload, list):
            raise FeedProtocolError("the content listing is not a JSON array", operation="content")
        refs = []
        for item in payload:
            if not isinstance(item, dict):
                raise FeedProtocolError("a content listing entry is not an object", operation="content")
            content_id, uri = item.get("contentId"), item.get("contentUri")
            created = parse_time(item.get("contentCreated"))
            if not isinstance(content_id, str) or not content_id or not isinstance(uri, str) or created is None:
                raise FeedProtocolError(
                    "a content listing entry lacks contentId, contentUri or a readable contentCreated",
                    operation="content",
                )
            uri = urljoin(self.root + "/", uri)
            self._require_origin(uri, "content", what="a contentUri")
            given = item.get("contentType")
            kind = given if isinstance(given, str) and given else content_type
            refs.append(ContentRef(kind, content_id, uri, created, parse_time(item.get("contentExpiration"))))
        yield from refs  # a page is checked whole before any of it is handed on

    def _next_page(self, header: str | None) -> str | None:
        if header is None or not header.strip():
            return None
        url = urljoin(self.root + "/", header.strip())
        self._require_origin(url, "content", what="a NextPageUri")
        return url

    def fetch(self, ref: ContentRef) -> list[dict[str, Any]]:
        """The records of one content blob, as raw JSON objects (AF20051: FeedContentExpired)."""
        self._require_origin(ref.content_uri, "blob", what="a contentUri")
        payload = self._json("blob", "GET", ref.content_uri)
        if not isinstance(payload, list) or not all(isinstance(record, dict) for record in payload):
            raise FeedProtocolError("the content blob is not a JSON array of records", operation="blob")
        return payload

    # -- requests ------------------------------------------------------------------------------------------------

    def _url(self, operation: str, **query: str) -> str:
        return self._with_publisher(f"{self.root}/{operation}" + (f"?{urlencode(query)}" if query else ""))

    def _with_publisher(self, url: str) -> str:
        """`url` with our PublisherIdentifier (and no other): it goes on every call, blob GETs and next pages too."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        pairs = [(k, v) for k, v in query if k.lower() != "publisheridentifier"]
        pairs.append(("PublisherIdentifier", self.publisher_id))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))

    def _require_origin(self, url: str, operation: str, *, what: str = "a link") -> None:
        if origin(url) != self._origin:
            parts = urlsplit(url)
            raise FeedProtocolError(
                f"refused {what} to {parts.scheme}://{parts.netloc}: the token is only sent to {self.base_url}",
                operation=operation,
            )

    def _json(self, operation: str, method: str, url: str) -> Any:
        return self._json_with_headers(operation, method, url)[1]

    def _json_with_headers(self, operation: str, method: str, url: str) -> tuple[Mapping[str, str], Any]:
        headers, content = self._request(operation, method, url)
        try:
            return headers, json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise FeedProtocolError("HTTP 200 with a body that is not JSON", operation=operation) from None

    def _request(self, operation: str, method: str, url: str) -> tuple[Mapping[str, str], bytes]:
        """One call with retries (throttling, server errors, transport) inside the attempts, deadline and budget."""
        url = self._with_publisher(url)
        self._require_origin(url, operation)
        policy = self.policy
        started = time.monotonic()
        allowed = policy.deadline_seconds
        if self.run_deadline is not None:
            allowed = min(allowed, self.run_deadline - started)
            if allowed <= 0:
                raise FeedBudgetExceeded("the run's time is used up; nothing more was sent", operation=operation)
        deadline = started + allowed

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, (FeedThrottled, FeedServerError, FeedTransportError))

        wait = retry_after_or_backoff(policy, FeedThrottled)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "activity feed %s: attempt %d failed (%s); retrying in %.1f s",
                operation,
                state.attempt_number,
                getattr(exc, "code", None) or type(exc).__name__,
                state.upcoming_sleep,
            )

        stop = DeadlineStop(policy.max_attempts, allowed, exhausted=lambda: self.requests_left <= 0)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            stop=stop,
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, operation, method, url, deadline)
        except (FeedThrottled, FeedServerError, FeedTransportError) as exc:
            if stop.out_of_time:
                raise FeedBudgetExceeded(
                    f"gave up after {time.monotonic() - started:.1f} s of {allowed:.0f} s allowed; the last "
                    f"attempt said: {exc.summary}",
                    operation=operation,
                    status=exc.status,
                    code=exc.code,
                ) from None
            if self.requests_left <= 0:
                raise FeedBudgetExceeded(
                    f"the request budget ({self.request_budget}) ran out while retrying: {exc.summary}",
                    operation=operation,
                    status=exc.status,
                    code=exc.code,
                ) from None
            raise

    def _attempt(self, operation: str, method: str, url: str, deadline: float) -> tuple[Mapping[str, str], bytes]:
        """One try; a 401 gets one fresh token and one immediate retry before it counts as an auth error."""
        status, headers, content = self._send(operation, method, url, deadline)
        if status == 401:
            log.info("activity feed %s: token rejected (401); fetching a new token and trying once more", operation)
            self._tokens.invalidate()
            status, headers, content = self._send(operation, method, url, deadline)
        if 200 <= status < 300:
            return headers, content
        if 300 <= status < 400:
            raise FeedProtocolError(f"HTTP {status} redirect; not followed", operation=operation, status=status)
        error = classify(
            status,
            parse_error_body(content),
            operation=operation,
            retry_after=retry_after_seconds(headers.get("Retry-After")),
        )
        if isinstance(error, FeedAuthError):
            error.summary = "the token was not accepted, also after fetching a new one"
            error.args = (error.render(),)
        raise error

    def _send(self, operation: str, method: str, url: str, deadline: float) -> tuple[int, Mapping[str, str], bytes]:
        self._require_origin(url, operation)
        if self.requests_left <= 0:
            raise FeedBudgetExceeded(
                f"the run's request budget ({self.request_budget} requests) is used up; nothing more was sent",
                operation=operation,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FeedBudgetExceeded("no time left for another attempt", operation=operation)
        try:
            token = self._tokens.get_token()
        except TokenError as exc:
            raise FeedAuthError(
                f"no token: {exc}", operation=operation, hint="Nothing was sent to the Management Activity API."
            ) from None
        request_headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"MailboxAuditGuard/{__version__}",
        }
        if method == "POST":
            request_headers["Content-Type"] = "application/json; charset=utf-8"
        timeout = (min(self.policy.connect_timeout_seconds, remaining), remaining)
        self.requests_sent += 1
        try:
            response = self._session.request(
                method,
                url,
                headers=request_headers,
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
            try:
                content = read_body(response, deadline, f"activity feed {operation}")
            finally:
                response.close()
        except requests.Timeout:
            raise FeedTransportError(f"no answer within {remaining:.0f} s", operation=operation) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise FeedTransportError(f"connection failed ({type(exc).__name__})", operation=operation) from None
        except ExchangeTransportError as exc:
            raise FeedTransportError(exc.summary, operation=operation) from None
        except ExchangeProtocolError as exc:
            raise FeedProtocolError(exc.summary, operation=operation) from None
        return response.status_code, response.headers, content


def _require_content_type(content_type: str) -> None:
    if content_type not in CONTENT_TYPES:
        raise FeedRequestError(
            f"unknown content type {content_type[:60]!r}; expected one of {', '.join(CONTENT_TYPES)}",
            hint="This is a bug in the caller; nothing was sent.",
        )


def feed_client_for(settings: Settings, feed: FeedSettings, **kwargs: Any) -> FeedClient:
    """A FeedClient for the configured tenant, with the same credential as Exchange but the feed's token scope."""
    tokens = token_provider_for(
        settings, feed.scope, permission=f"the {PERMISSION} permission (Office 365 Management APIs)"
    )
    return FeedClient(feed.base_url, settings.tenant_id, tokens, publisher_id=feed.publisher_id, **kwargs)


__all__ = [
    "MAX_AGE",
    "MAX_WINDOW",
    "START_INTERVAL",
    "ContentRef",
    "FeedClient",
    "FeedError",
    "check_window",
    "feed_client_for",
]
