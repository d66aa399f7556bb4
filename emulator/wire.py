"""HTTP-level value types shared by the listeners: the parsed request, the answer, and the request log entry."""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class RecordedRequest:
    """One request as a listener saw it. `status` is what was answered (None: no answer, e.g. a hang fault)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    host: str
    listener: str
    cmdlet: str | None = None
    status: int | None = None
    at: float = field(default_factory=time.monotonic)
    form: dict[str, str] | None = None  # decoded application/x-www-form-urlencoded body (token requests)
    operation: str | None = None  # Graph requests: the operation, e.g. "rbacApplication-post-roleAssignments"


@dataclass
class Request:
    """A parsed request handed to a listener's handler."""

    method: str
    path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    host: str
    listener: str

    def body_bytes(self) -> bytes:
        """The body, un-gzipped when it is labelled or looks gzipped (ingestion may compress)."""
        data = self.raw_body
        if self.headers.get("content-encoding", "").lower() == "gzip" or data[:2] == b"\x1f\x8b":
            try:
                return gzip.decompress(data)
            except (OSError, EOFError):
                return data
        return data

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        data = self.body_bytes()
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def form(self) -> dict[str, str] | None:
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", ""):
            return None
        return dict(parse_qsl(self.raw_body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass
class Response:
    """An answer. `action` "hang" answers nothing; "reset" sends headers and half the body, then resets."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None
    hang_seconds: float | None = None


def json_response(
    status: int,
    payload: Any,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json; charset=utf-8",
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, {"Content-Type": content_type, **(headers or {})})
