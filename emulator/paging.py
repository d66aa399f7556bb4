"""Server-side cursors for paged cmdlets: the matched rows are kept once, pages are slices of them.

A skiptoken names (query, offset, page), so retrying the same nextLink returns the same page, and each page
costs O(page size) no matter how large the result is.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_PAGE_SIZE = 1000


@dataclass
class Cursor:
    qid: str
    cmdlet: str
    rows: list[dict[str, Any]]
    render: Callable[[dict[str, Any]], dict[str, Any]]
    warnings: list[str]
    anchor: str = ""  # the X-AnchorMailbox (lower-cased) the query was started with
    created: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Position:
    qid: str
    offset: int
    page: int


def make_token(qid: str, offset: int, page: int) -> str:
    return base64.urlsafe_b64encode(f"{qid}:{offset}:{page}".encode()).decode().rstrip("=")


def parse_token(token: str) -> Position | None:
    """The position a skiptoken names, or None when it is not one of ours."""
    try:
        qid, offset, page = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")
        return Position(qid, int(offset), int(page))
    except (ValueError, UnicodeDecodeError):
        return None


def page_size(prefer: str | None) -> int:
    """`Prefer: odata.maxpagesize=N` (clamped to 1..1000); default 1000."""
    for part in (prefer or "").replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            try:
                return max(1, min(MAX_PAGE_SIZE, int(value.strip().strip('"'))))
            except ValueError:
                break
    return MAX_PAGE_SIZE


class CursorStore:
    """Live cursors, expiring `ttl` seconds after the query started; at most `capacity` (oldest evicted)."""

    def __init__(self, ttl: float = 1800.0, capacity: int = 64) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._lock = threading.Lock()
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()

    def create(
        self,
        cmdlet: str,
        rows: list[dict[str, Any]],
        render: Callable[[dict[str, Any]], dict[str, Any]],
        warnings: list[str],
        anchor: str = "",
    ) -> Cursor:
        cursor = Cursor(secrets.token_hex(8), cmdlet, rows, render, warnings, anchor)
        with self._lock:
            self._prune()
            self._cursors[cursor.qid] = cursor
            while len(self._cursors) > self.capacity:
                self._cursors.popitem(last=False)
        return cursor

    def get(self, qid: str) -> Cursor | None:
        with self._lock:
            self._prune()
            cursor = self._cursors.get(qid)
            if cursor is not None:
                self._cursors.move_to_end(qid)
            return cursor

    def drop(self, qid: str) -> None:
        with self._lock:
            self._cursors.pop(qid, None)

    def clear(self) -> None:
        with self._lock:
            self._cursors.clear()

    def _prune(self) -> None:
        cutoff = time.monotonic() - self.ttl
        for qid in [q for q, c in self._cursors.items() if c.created < cutoff]:
            del self._cursors[qid]
