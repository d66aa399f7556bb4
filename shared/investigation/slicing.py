"""Complete or say so: the slicing plan of an export. Pure (the queries are run by a callable it is given).

The window is cut into slices of at most SLICE (24 h, activity-feed.md §4.4 "our rule"), one query each, in time
order. A slice whose query reports `isRecordCountLimitExceeded`, or returns fewer records than it announced, is
not complete: it is halved and both halves run, recursively, while a half is at least the minimum slice. A slice
that cannot be halved any more and is still not complete, or whose query failed, is *missing*: the export is
incomplete and names it. De-duplication across slices is the writer's job (export.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.investigation.request import Window

SLICE = timedelta(hours=24)


@dataclass
class SliceResult:
    """What one query over one window gave."""

    window: Window
    query_id: str | None = None
    status: str = "notRun"  # the query's last status: succeeded, failed, cancelled, timedOut, error, ...
    announced: int | None = None  # approximateReturnedRecordCount, when the service said
    received: int = 0  # records read from the query (0 when it was split unread)
    limit_exceeded: bool = False
    read: bool = False  # its records were read (and written)
    error: str | None = None
    attempts: int = 1

    @property
    def short(self) -> bool:
        """Fewer records than announced: some were not delivered."""
        return self.read and self.announced is not None and self.received < self.announced

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded" and self.error is None

    @property
    def complete(self) -> bool:
        return self.succeeded and self.read and not self.limit_exceeded and not self.short

    def as_json(self, *, split: bool) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "window": self.window.as_json(),
            "status": self.status,
            "attempts": self.attempts,
            "announced_records": self.announced,
            "records_received": self.received,
            "record_count_limit_exceeded": self.limit_exceeded,
            "read": self.read,
            "split": split,
            "error": self.error,
        }


@dataclass(frozen=True)
class Missing:
    """A part of the window the export does not hold completely, and why."""

    window: Window
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {**self.window.as_json(), "reason": self.reason}


@dataclass
class Plan:
    """The slices run so far, in order, and what is missing; filled as the export goes (an interrupted export
    still has everything done before the interruption)."""

    results: list[tuple[SliceResult, bool]] = field(default_factory=list)  # (result, was split)
    missing: list[Missing] = field(default_factory=list)
    pending: list[Window] = field(default_factory=list)  # not run yet (after an interruption: what is missing)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.pending


def initial_slices(window: Window, size: timedelta = SLICE) -> list[Window]:
    """`window` cut into consecutive slices of at most `size`, in time order."""
    slices, start = [], window.start
    while start < window.end:
        end = min(start + size, window.end)
        slices.append(Window(start, end))
        start = end
    return slices


def can_split(window: Window, min_slice: timedelta) -> bool:
    """A window can be halved while each half is at least `min_slice` long."""
    return window.duration >= 2 * min_slice


def run_plan(
    window: Window,
    run_slice: Callable[[Window, bool], SliceResult],
    min_slice: timedelta,
    plan: Plan,
    *,
    size: timedelta = SLICE,
) -> Plan:
    """Run every slice through `run_slice(window, can_split)`, halving the incomplete ones, into `plan`.

    `run_slice` may skip reading a slice it is told can be split once it knows it exceeds the limit. An exception
    from it (KeyboardInterrupt) leaves `plan` with the slices done and the rest in `pending`."""
    plan.pending = initial_slices(window, size)
    while plan.pending:
        current = plan.pending[0]
        splittable = can_split(current, min_slice)
        result = run_slice(current, splittable)
        plan.pending.pop(0)
        if result.complete:
            plan.results.append((result, False))
        elif result.succeeded and splittable:
            plan.results.append((result, True))
            plan.pending[0:0] = list(current.halves())
        else:
            plan.results.append((result, False))
            plan.missing.append(Missing(current, _reason(result, min_slice)))
    return plan


def _reason(result: SliceResult, min_slice: timedelta) -> str:
    if not result.succeeded:
        return (
            f"query {result.query_id or '(not created)'} did not succeed ({result.status}): {result.error or ''}".strip(
                ": "
            )
        )
    minutes = f"{min_slice.total_seconds() / 60:g} min"
    if result.limit_exceeded:
        return (
            f"query {result.query_id} exceeded its record-count limit even at the minimum slice ({minutes}, "
            f"GRAPH_AUDIT_MIN_SLICE_MINUTES); {result.received} of about {result.announced} records were read"
        )
    return (
        f"query {result.query_id} returned {result.received} records but announced {result.announced}, even at "
        f"the minimum slice ({minutes})"
    )
