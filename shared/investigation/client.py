"""The audit log query API on the wire (activity-feed.md §4): create a query, wait for it, page its records.

Built on shared/graph/client.py (token to the Graph origin only, origin-locked `@odata.nextLink`, 429 and
Retry-After retries within the policy's deadline). Waiting polls the query's status with growing pauses within a
total time; records are yielded page by page, so memory does not grow with the number of records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from shared.graph.client import GraphClient
from shared.graph.errors import GraphAuthError, GraphError

log = logging.getLogger("mailbox_audit_guard.search")

QUERIES = "/security/auditLog/queries"
PERMISSION = "AuditLogsQuery.Read.All"
EXCHANGE_PERMISSION = "AuditLogsQuery-Exchange.Read.All"
DONE = frozenset({"succeeded", "failed", "cancelled", "unknownFutureValue"})
MAX_RECORD_PAGES = 100_000  # a query holds at most 1,000,000 records (§4.3); more pages than this is a loop
POLL_GROWTH = 1.5
POLL_CAP_SECONDS = 60.0


class SearchError(Exception):
    """The search cannot go on (permission, API missing, auditing off, ...); the message says what to do."""


@dataclass(frozen=True)
class QueryStatus:
    id: str
    status: str
    announced: int | None
    limit_exceeded: bool

    @classmethod
    def from_graph(cls, document: dict[str, Any], fallback_id: str = "") -> QueryStatus:
        count = document.get("approximateReturnedRecordCount")
        return cls(
            id=str(document.get("id") or fallback_id),
            status=str(document.get("status") or "unknown"),
            announced=count if isinstance(count, int) and not isinstance(count, bool) else None,
            limit_exceeded=document.get("isRecordCountLimitExceeded") is True,
        )


def explain(error: GraphError | GraphAuthError, what: str) -> str:
    """The investigator's message for a Graph error while doing `what`."""
    if isinstance(error, GraphAuthError):
        return str(error)
    said = f"{error.code}: {error.message}" if error.message else error.code
    ref = f" (request-id {error.request_id})" if error.request_id else ""
    if error.status == 403:
        return (
            f"Not allowed to {what}: Graph answered 403 ({said}){ref}. The app needs the Microsoft Graph application "
            f"permission {PERMISSION} (or {EXCHANGE_PERMISSION} for Exchange records only), with admin consent: "
            "`python -m shared grant-permissions --principal-id <id> --search` assigns it. New permissions can take "
            "a while to reach new tokens."
        )
    if error.status == 401:
        return (
            f"Graph refused the app's token while trying to {what} (401 {said}){ref}; check EXO_TENANT_ID and "
            "EXO_CLOUD."
        )
    if "AuditingDisabledTenant" in f"{error.code} {error.message}":
        return (
            f"The tenant's unified audit log is off, so there is nothing to search (Graph: {said}){ref}. Turn it on "
            "(`python -m shared remediate --control audit-log-search`), then search what is recorded from then on."
        )
    if error.status == 404 and error.method == "POST":
        return (
            f"Graph has no audit log query API at {error.path} ({said}){ref}: check GRAPH_AUDIT_API_VERSION (beta or "
            "v1.0) and the cloud (the API exists in the global service only)."
        )
    if error.status == 429:
        return f"Graph kept throttling while trying to {what} ({said}){ref}; run the search again later."
    if error.status is None:
        return f"Could not reach Microsoft Graph to {what}: {said}."
    return f"Could not {what}: Graph answered {error.status} ({said}){ref}."


class AuditQueryClient:
    """Create, wait for and read audit log queries through a GraphClient."""

    def __init__(
        self,
        graph: GraphClient,
        *,
        poll_seconds: float = 5.0,
        timeout_seconds: float = 1800.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.graph = graph
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep
        self._monotonic = monotonic

    def create(self, body: dict[str, Any]) -> QueryStatus:
        """POST a query; its id and first status (notStarted)."""
        created = self.graph.post(QUERIES, body)
        status = QueryStatus.from_graph(created)
        if not status.id:
            raise GraphError(201, "InvalidResponse", "the created query has no id", method="POST", path=QUERIES)
        log.info(
            "audit log query %s created for %s – %s",
            status.id,
            body.get("filterStartDateTime"),
            body.get("filterEndDateTime"),
        )
        return status

    def wait(self, query_id: str) -> QueryStatus:
        """Poll until the query is done or the time is up (status `timedOut`); pauses grow by POLL_GROWTH."""
        started = self._monotonic()
        pause = self.poll_seconds
        while True:
            status = QueryStatus.from_graph(self.graph.get(f"{QUERIES}/{query_id}"), query_id)
            if status.status in DONE:
                return status
            left = self.timeout_seconds - (self._monotonic() - started)
            if left <= 0:
                return QueryStatus(query_id, "timedOut", status.announced, status.limit_exceeded)
            self._sleep(min(pause, left))
            pause = min(pause * POLL_GROWTH, max(POLL_CAP_SECONDS, self.poll_seconds))

    def record_pages(self, query_id: str) -> Iterator[list[dict[str, Any]]]:
        """The query's records, page by page, through `@odata.nextLink` (same origin only)."""
        yield from self.graph.pages(f"{QUERIES}/{query_id}/records", max_pages=MAX_RECORD_PAGES)
