"""What Microsoft Graph calls can fail with: plain values, no I/O, so the pure planner can explain them."""

from __future__ import annotations


class GraphError(Exception):
    """Graph answered an error (or could not be reached: `status` None). The message holds no token."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        *,
        method: str = "",
        path: str = "",
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status, self.code, self.message = status, code, message
        self.method, self.path, self.request_id = method, path, request_id
        self.retry_after = retry_after  # seconds, from a 429/503's Retry-After
        where = f"{method} {path}".strip()
        answered = f"answered {status}" if status is not None else "failed"
        super().__init__(f"Graph {where} {answered} {code}: {message}".replace("  ", " "))


class GraphAuthError(Exception):
    """No Graph token could be obtained (not signed in, wrong tenant, ...); the message says what to do."""
