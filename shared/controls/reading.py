"""What every control's read shares: the run context (client, policy, per-run cache) and streaming helpers.

Large lists stream page by page into pure accumulators, so memory follows the findings, not the tenant. Anything
that makes a read incomplete is recorded so the verdict fails closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.config.settings import AuditPolicy
from shared.exchange.errors import ComplianceUnavailable, ExchangeIncompleteRead, ExchangeProtocolError

if TYPE_CHECKING:  # the client is handed in; reads never build one
    from shared.exchange.client import ExchangeClient, Page
    from shared.exchange.compliance import ComplianceConnection

MISSING = object()  # a property the answer did not carry, as opposed to a null value
TRUNCATION_MARKER = "more results available"
MAX_WARNINGS = 100


class WatchState(Protocol):
    """The part of the activity watch's state store (shared.activity.state.StateStore) a control may use: the
    key/value area, and how far the feed has been read. Handed in, so controls never open a store."""

    def value(self, tenant: str, key: str) -> str | None: ...

    def put_value(self, tenant: str, key: str, value: str) -> None: ...

    def delete_value(self, tenant: str, key: str) -> None: ...

    def values(self, tenant: str, prefix: str = "") -> dict[str, str]: ...

    def checkpoint(self, tenant: str, content_type: str) -> datetime | None: ...

    def failures(self, tenant: str) -> Sequence[Any]: ...  # FailedBlob: `.content_type`, `.created`


@dataclass
class RunContext:
    """What reads need: the client, the policy, and a per-run cache so two controls share one mailbox scan.

    `state`: the activity watch's store, for a control that needs it (audit-pipeline), opened by the caller;
    `state_problem` says why it could not be opened."""

    client: ExchangeClient
    policy: AuditPolicy
    cache: dict[str, Any] = field(default_factory=dict)
    compliance: ComplianceConnection | None = None  # Security & Compliance, opened on first use
    tenant_id: str = ""
    state: WatchState | None = None
    state_problem: str | None = None

    def client_for(self, endpoint: str) -> ExchangeClient:
        """The client of a control's endpoint: "exchange", or "compliance" (Security & Compliance)."""
        if endpoint == "exchange":
            return self.client
        if self.compliance is None:
            raise ComplianceUnavailable("no Security & Compliance endpoint is configured for this run")
        return self.compliance.client()

    def cached(self, key: str, read: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = read()
        return self.cache[key]


class Accumulator(Protocol):
    """A pure, page-fed scan (see `scan.StreamedScan`)."""

    incomplete: str | None

    def add(self, row: dict[str, Any]) -> None: ...

    def reset(self) -> None: ...


def single_row(rows: list[dict[str, Any]], cmdlet: str) -> dict[str, Any]:
    """A singleton cmdlet must answer exactly one row; anything else is unreadable, not a value."""
    if len(rows) != 1:
        raise ExchangeProtocolError(f"expected exactly one object, got {len(rows)}", cmdlet=cmdlet)
    return rows[0]


def stream_into(pages: Iterator[Page], accumulator: Accumulator) -> list[str]:
    """Feed every row to `accumulator.add`, resetting it when the query restarts; return the warnings (bounded).

    A final page that warns the result was cut short (ResultSize) without a nextLink means the data is incomplete
    (the client already removed that warning from pages that have a nextLink, where it only means paging). So does
    any page whose answer carried `@adminapi.errors`: those texts are returned with the warnings, for the evidence.
    """
    warnings: list[str] = []
    last_warnings: list[str] = []
    errors: list[str] = []
    for page in pages:
        if page.restarted:
            accumulator.reset()
            warnings = []
            errors = []
        for row in page.rows:
            accumulator.add(row)
        last_warnings = page.warnings
        warnings.extend(page.warnings[: max(0, MAX_WARNINGS - len(warnings))])
        errors.extend(page.errors)
    if errors:
        accumulator.incomplete = f"Exchange reported {len(errors)} error(s) next to the rows: {errors[0]}"
        warnings.extend(f"Exchange reported an error: {text}" for text in errors[:MAX_WARNINGS])
    elif any(TRUNCATION_MARKER in warning.lower() for warning in last_warnings):
        accumulator.incomplete = "Exchange truncated the answer and offered no next page"
    return warnings


def count_rows(pages: Iterator[Page]) -> int:
    """Count a streamed answer's rows (a restarted query counts from zero again).

    An answer that carried `@adminapi.errors` cannot be counted: ExchangeIncompleteRead (fail closed).
    """
    total = 0
    for page in pages:
        total = len(page.rows) if page.restarted else total + len(page.rows)
        if page.errors:
            raise ExchangeIncompleteRead(
                "Exchange answered with rows and errors, so the count is incomplete",
                status=200,
                detail="; ".join(page.errors[:5]),
            )
    return total
