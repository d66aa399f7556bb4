"""Fault injection: the Fault description, matching/firing bookkeeping, and the canned bad answers."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .wire import Response, json_response

KINDS = frozenset(
    {
        "status",
        "delay",
        "reset",
        "hang",
        "foreign_next_link",
        "loop_next_link",
        "expire_cursor",
        "ignore_writes",
        "stale_reads",
        "garbage_token",
        "short_token_lifetime",
        "ok_no_value",
        "ok_null_value",
        "ok_error",
        "adminapi_errors",
        "redirect",
        "foreign_content_uri",
    }
)
LISTENERS = frozenset({"exchange", "token", "msi", "ingestion", "graph", "manage", "compliance"})
# Kinds that replace (or delay) the whole answer; checked when a request arrives. The others modify a normal
# answer and are checked where they apply (nextLink built, write about to happen, token about to be issued).
RESPONSE_KINDS = frozenset({"status", "delay", "reset", "hang", "garbage_token", "expire_cursor"})
# Exchange-only kinds, also checked when a request arrives: a 3xx instead of the answer, a 200 carrying an error,
# or the normal answer's 200 body reshaped (exchange-admin-api.md §10.1, §10.5, §10.8).
EXCHANGE_BODY_KINDS = frozenset({"ok_no_value", "ok_null_value", "ok_error", "adminapi_errors", "redirect"})
CONCURRENCY_TEXT = "You have reached the maximum number of concurrent requests per tenant. Please wait and try again."


@dataclass(init=False, eq=False)
class Fault:
    """`Fault(kind, cmdlet=None, listener="exchange", times=1, after=0, **options)`.

    Options by kind: status (`status`, `headers`, `body`, `message`), delay (`seconds`, `then`), hang (`seconds`),
    reset (`apply`), garbage_token (`body`), short_token_lifetime (`seconds`, `honest`), stale_reads (`reads`,
    `not_found`; `cmdlet` names the write, see emulator/staleness.py), ok_error (`key`, `exception_type`,
    `message`, `status`), adminapi_errors (`errors`), redirect (`status`, `location`); any exchange fault may add
    `page` (1-based page of a paged query). On listener "manage", `cmdlet` names the feed operation (start, stop,
    list, content, blob) and a status fault may set the AF `code`. On listener "graph", `cmdlet` names the Graph
    operation (emulator/graph.py REQUIRED) and a status fault may set the Graph error `code`. `times=-1` fires forever;
    `after=N` lets N matches pass first. Any fault may set `tenant` (an id or organization): it then fires only for
    requests whose path names that tenant (many tenants behind one emulator).
    """

    kind: str
    cmdlet: str | None
    listener: str
    times: int
    after: int
    options: dict[str, Any]
    matched: int = field(default=0)
    fired: int = field(default=0)

    def __init__(
        self,
        kind: str,
        cmdlet: str | None = None,
        listener: str = "exchange",
        times: int = 1,
        after: int = 0,
        **options: Any,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(sorted(KINDS))}")
        if listener not in LISTENERS:
            raise ValueError(f"unknown fault listener {listener!r}; expected one of {', '.join(sorted(LISTENERS))}")
        self.kind, self.cmdlet, self.listener = kind, cmdlet, listener
        self.times, self.after = int(times), int(after)
        if "then" in options and options["then"] is not None:
            options["then"] = Fault.from_value(options["then"])
        self.options = options
        self.matched = 0
        self.fired = 0

    @classmethod
    def from_value(cls, value: Fault | dict[str, Any]) -> Fault:
        """A Fault from itself or from its scenario-file dict form."""
        if isinstance(value, Fault):
            return value
        data = dict(value)
        return cls(data.pop("kind"), **data)

    def matches(self, listener: str, cmdlet: str | None, page: int | None) -> bool:
        if listener != self.listener:
            return False
        if self.cmdlet is not None and (cmdlet is None or self.cmdlet.lower() != cmdlet.lower()):
            return False
        return "page" not in self.options or self.options["page"] == page


@dataclass(frozen=True)
class FiredFault:
    """One firing of a fault, as `Emulator.fired_faults` lists it."""

    kind: str
    listener: str
    cmdlet: str | None
    page: int | None
    path: str
    at: float
    fault: Fault


class FaultSet:
    """The active faults. Per request, faults are tried in the order added; the first that fires wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.fired: list[FiredFault] = []

    def add(self, fault: Fault | dict[str, Any]) -> Fault:
        """Activate `fault`; its counters restart, so a Fault defined once (e.g. in a parametrize) can be reused."""
        fault = Fault.from_value(fault)
        with self._lock:
            fault.matched = fault.fired = 0
            self._faults.append(fault)
        return fault

    def has(self, kind: str) -> bool:
        """Is a fault of this kind active (it may still be waiting for its `after` matches)?"""
        with self._lock:
            return any(fault.kind == kind for fault in self._faults)

    def fired_log(self) -> list[FiredFault]:
        with self._lock:
            return list(self.fired)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def clear_log(self) -> None:
        with self._lock:
            self.fired.clear()

    def fire(
        self,
        kinds: frozenset[str] | set[str],
        *,
        listener: str,
        cmdlet: str | None = None,
        page: int | None = None,
        path: str = "",
    ) -> Fault | None:
        """Count a match on every eligible fault up to the first that fires, and return that one."""
        with self._lock:
            for fault in self._faults:
                if fault.kind not in kinds or not fault.matches(listener, cmdlet, page):
                    continue
                if "tenant" in fault.options and f"/{str(fault.options['tenant']).lower()}/" not in path.lower():
                    continue  # many tenants: this fault is for the requests that name one tenant only
                fault.matched += 1
                if fault.matched <= fault.after or (fault.times != -1 and fault.fired >= fault.times):
                    continue
                fault.fired += 1
                self.fired.append(FiredFault(fault.kind, listener, cmdlet, page, path, time.monotonic(), fault))
                return fault
        return None


def respond(
    fault: Fault,
    listener: str,
    proceed: Callable[[], Response],
    wait: Callable[[float], object],
    *,
    real: bool = False,
) -> Response:
    """The answer for a response-kind fault; `proceed` produces the normal answer, `wait` sleeps until stop().

    `real`: Exchange error envelopes take the real shapes (scenario quirk `real_error_bodies`)."""
    opts = fault.options
    if fault.kind == "delay":
        wait(float(opts.get("seconds", 1.0)))
        nested = opts.get("then")
        return respond(nested, listener, proceed, wait, real=real) if nested else proceed()
    if fault.kind == "hang":
        seconds = opts.get("seconds")
        return Response(0, action="hang", hang_seconds=None if seconds is None else float(seconds))
    if fault.kind == "reset":
        response = proceed() if opts.get("apply") else json_response(200, {"value": [{"Name": "x" * 512}] * 8})
        response.action = "reset"
        return response
    if fault.kind == "garbage_token":
        return _garbage_token(str(opts.get("body", "tokenless")))
    if fault.kind == "status":
        return status_response(fault, listener, real=real)
    raise ValueError(f"fault kind {fault.kind!r} does not produce a response")


def status_response(fault: Fault, listener: str, *, real: bool = False) -> Response:
    opts = fault.options
    status = int(opts.get("status", 503))
    kind = str(opts.get("body", "envelope"))
    message = str(opts.get("message", f"Emulated {status} {errors.CODES.get(status, 'Error')}"))
    headers = {str(k): str(v) for k, v in (opts.get("headers") or {}).items()}
    if kind == "envelope":
        response = json_response(status, _envelope(listener, status, message, opts, real))
    elif kind == "nul":
        response = Response(status, b"\x00" * 16, {"Content-Type": "application/json"})
    elif kind == "html":
        html = f"<html><head><title>{status}</title></head><body><h1>{message}</h1></body></html>"
        response = Response(status, html.encode(), {"Content-Type": "text/html; charset=utf-8"})
    elif kind == "empty":
        response = Response(status, b"", {"Content-Type": "application/json"})
    elif kind == "truncated_json":
        text = json.dumps(_envelope(listener, status, message, opts, real))
        response = Response(status, text[: len(text) // 2].encode(), {"Content-Type": "application/json"})
    elif kind == "garbage":
        response = Response(status, b"\x8b\x1f\xff\xfe garbage \x00\x9c", {"Content-Type": "application/json"})
    elif kind == "raw":  # exactly these bytes (`raw` text or `raw_base64`), e.g. a deep-nested or gzip-bomb body
        data = base64.b64decode(opts["raw_base64"]) if "raw_base64" in opts else str(opts.get("raw", "")).encode()
        response = Response(status, data, {"Content-Type": "application/json"})
    elif kind == "concurrency":
        response = Response(status, CONCURRENCY_TEXT.encode(), {"Content-Type": "text/plain; charset=utf-8"})
    else:
        raise ValueError(f"unknown status fault body {kind!r}")
    response.headers.update(headers)
    return response


def _envelope(listener: str, status: int, message: str, opts: dict[str, Any], real: bool = False) -> dict[str, Any]:
    """The error body each listener's real counterpart would send."""
    if listener == "token":
        return {
            "error": "temporarily_unavailable",
            "error_description": f"AADSTS50196: {message}",
            "error_codes": [50196],
        }
    if listener == "msi":
        return {"statusCode": status, "message": message}
    if listener == "graph":
        from .graph import GRAPH_CODES, GRAPH_MESSAGES, graph_envelope

        text = str(opts.get("message") or GRAPH_MESSAGES.get(status, message))
        return graph_envelope(str(opts.get("code", GRAPH_CODES.get(status, "UnknownError"))), text)
    if listener == "manage":
        code = str(opts.get("code", "AF429" if status in (403, 429) else "AF50000" if status >= 500 else "AF20001"))
        return {"error": {"code": code, "message": message}}
    if listener == "ingestion":
        return {
            "itemsReceived": 0,
            "itemsAccepted": 0,
            "errors": [{"index": 0, "statusCode": status, "message": message}],
        }
    exception_type = str(opts.get("exception_type", errors.ODATA))
    return errors.envelope(errors.make(status, exception_type, message), real)


def _garbage_token(kind: str) -> Response:
    if kind == "html":
        return Response(200, b"<html><body>Sign in to continue</body></html>", {"Content-Type": "text/html"})
    if kind == "garbage":
        return Response(200, b"\x00\xffnot-json", {"Content-Type": "application/json"})
    return json_response(200, {"token_type": "Bearer", "expires_in": 3599})
