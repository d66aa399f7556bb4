"""Typed errors of the Office 365 Management Activity API, and the classifier that turns an answer into one.

Pure: no I/O. The API's body is `{"error": {"code": "AF…", "message": "…"}}` (activity-feed.md §1.6); the code
decides first, the HTTP status second (an AF429 may come as a 403 and is throttling, never a permission error).
Messages say what happened and what to do; they never hold a token (server texts are masked and bounded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.redact import redact
from shared.text import shorten

PERMISSION = "ActivityFeed.Read"
PERMISSION_HINT = (
    f"Grant the app (or managed identity) the application permission {PERMISSION} on Office 365 Management APIs "
    "(appId c5393580-f805-4401-95e8-94b7a6ef2fc2) with admin consent, and make sure the token is for the "
    "Management Activity API of the right cloud (EXO_CLOUD, O365_MANAGEMENT_ENDPOINT)."
)
THROTTLE_CODES = frozenset({"AF429"})
SERVER_CODES = frozenset({"AF50000", "AF50005", "AF50006"})
PERMISSION_CODES = frozenset({"AF10001"})
TENANT_CODES = frozenset({"AF20010", "AF20011", "AF20012", "AF20013"})
SUBSCRIPTION_CODES = frozenset({"AF20022", "AF20023"})
ALREADY_ENABLED = "AF20024"
WINDOW_CODES = frozenset({"AF20030", "AF20055", "AF20056"})
NEXT_PAGE_INVALID = "AF20031"
MISSING_CODES = frozenset({"AF20050", "AF20052"})
EXPIRED = "AF20051"
# The unified audit log is off (or just switched on: up to 60 minutes to reach the API), activity-feed.md §1.1.
UAL_OFF_MARKER = "does not exist"
UAL_OFF_TYPE = "DataServiceException"


class FeedError(Exception):
    """A Management Activity API call that did not produce a usable answer."""

    hint = "See the message above."

    def __init__(
        self,
        summary: str,
        *,
        operation: str | None = None,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.summary = summary
        self.operation = operation
        self.status = status
        self.code = code
        self.detail = detail
        if hint is not None:
            self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = f"activity feed {self.operation}: " if self.operation else "activity feed: "
        status = f" (HTTP {self.status}{', ' + self.code if self.code else ''})" if self.status or self.code else ""
        detail = f" The API said: {self.detail}" if self.detail else ""
        return f"{where}{self.summary}{status}.{detail} {self.hint}".strip()


class FeedAuthError(FeedError):
    hint = "No usable token for the Management Activity API. " + PERMISSION_HINT


class FeedPermissionError(FeedError):
    hint = f"The token lacks the {PERMISSION} role. " + PERMISSION_HINT


class FeedTenantError(FeedError):
    hint = (
        "The tenant is unknown to the Management Activity API, or its unified audit log is off: switch audit log "
        "search on (control audit-log-search; it takes up to 60 minutes to reach the API) and check EXO_TENANT_ID."
    )


class FeedNoSubscription(FeedError):
    hint = "The content type has no enabled subscription; it is started (at most once per 15 minutes) and retried."


class FeedWindowError(FeedError):
    hint = (
        "A content listing covers at most 24 hours and starts at most 7 days back (and before its end); "
        "the watch lists in slices, so this points at a clock that is off."
    )


class FeedContentExpired(FeedError):
    hint = "The content blob is older than 7 days and cannot be read any more: its records are lost to the watch."


class FeedContentMissing(FeedError):
    hint = "The content blob does not exist (or its id is invalid); it is skipped and reported."


class FeedThrottled(FeedError):
    hint = "The Management Activity API is throttling this publisher: retried with backoff; spread the runs out."

    def __init__(self, summary: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(summary, **kwargs)


class FeedServerError(FeedError):
    hint = "The Management Activity API had an internal error; it was retried. Check the Microsoft 365 service health."


class FeedTransportError(FeedError):
    hint = "The Management Activity API could not be reached or did not answer in time; check the network path."


class FeedProtocolError(FeedError):
    hint = "The answer was not usable, so nothing was concluded from it (fail closed)."


class FeedBudgetExceeded(FeedError):
    hint = "This run's request budget or time is used up; nothing more was sent. The next run continues."


class FeedRequestError(FeedError):
    hint = "The API rejected the request; this is not retried."


@dataclass(frozen=True)
class ErrorInfo:
    """What an error answer said: the AF code and message (either may be missing)."""

    code: str | None
    message: str | None


def parse_error_body(content: bytes) -> ErrorInfo:
    """`{"error": {"code", "message"}}` (or `{"code", "message"}`); an unreadable body gives (None, None)."""
    try:
        payload = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        text = content.decode("utf-8", "replace").strip() if content else ""
        return ErrorInfo(None, clean(text) if text and "\x00" not in text else None)
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        payload = payload["error"]
    if not isinstance(payload, dict):
        return ErrorInfo(None, None)
    code, message = payload.get("code"), payload.get("message")
    return ErrorInfo(
        str(code).strip().upper() if isinstance(code, str) and code.strip() else None,
        clean(str(message)) if message not in (None, "") else None,
    )


def clean(text: str) -> str:
    """A server text fit for a message: tokens masked, whitespace folded, bounded."""
    return shorten(redact(text), 400)


def classify(status: int, info: ErrorInfo, *, operation: str, retry_after: float | None = None) -> FeedError:
    """The typed error for a non-2xx answer (code first, status second)."""
    code, detail = info.code, info.message
    kwargs: dict[str, Any] = {"operation": operation, "status": status, "code": code, "detail": detail}
    if code in THROTTLE_CODES or status == 429:
        return FeedThrottled("throttled", retry_after=retry_after, **kwargs)
    if code in SERVER_CODES or (status >= 500 and code is None) or status in (408, 502, 503, 504):
        return FeedServerError("server-side error", **kwargs)
    if code in PERMISSION_CODES:
        return FeedPermissionError(f"the token does not carry the {PERMISSION} permission", **kwargs)
    if code in TENANT_CODES or (detail and UAL_OFF_TYPE in detail and UAL_OFF_MARKER in detail):
        return FeedTenantError("the tenant was refused", **kwargs)
    if code in SUBSCRIPTION_CODES:
        what = "disabled" if code == "AF20023" else "not started"
        return FeedNoSubscription(f"the subscription is {what}", **kwargs)
    if code in WINDOW_CODES:
        return FeedWindowError("the listing window was refused", **kwargs)
    if code == EXPIRED:
        return FeedContentExpired("the content has expired", **kwargs)
    if code in MISSING_CODES:
        return FeedContentMissing("the content does not exist", **kwargs)
    if code == NEXT_PAGE_INVALID:
        return FeedProtocolError("the server refused its own next page link", **kwargs)
    if status == 401:
        return FeedAuthError("the token was not accepted", **kwargs)
    if status == 403:
        return FeedPermissionError("access denied", **kwargs)
    if status >= 500:
        return FeedServerError("server-side error", **kwargs)
    return FeedRequestError("the request was refused", **kwargs)
