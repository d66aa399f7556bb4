"""Application Insights ingestion stand-in: POST /v2.1/track (or /v2/track) with a JSON array of envelopes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .faults import RESPONSE_KINDS, respond
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .emulator import Emulator

TRACK_PATHS = frozenset({"/v2.1/track", "/v2/track"})


def parse_envelopes(data: bytes) -> list[dict[str, Any]] | None:
    """A JSON array, a single envelope, or newline-delimited envelopes; None when it is none of these."""
    try:
        parsed = json.loads(data)
    except ValueError:
        try:
            parsed = [json.loads(line) for line in data.splitlines() if line.strip()]
        except ValueError:
            return None
    if isinstance(parsed, dict):
        parsed = [parsed]
    return parsed if isinstance(parsed, list) else None


class IngestionApi:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def handle(self, req: Request) -> Response:
        if req.path not in TRACK_PATHS or req.method != "POST":
            return json_response(404, {"error": f"No route for {req.method} {req.path}"})
        fault = self.emu.faults.fire(
            RESPONSE_KINDS - {"expire_cursor", "garbage_token"}, listener="ingestion", path=req.path
        )
        proceed = lambda: self._track(req)  # noqa: E731
        return respond(fault, "ingestion", proceed, self.emu.wait) if fault else proceed()

    def _track(self, req: Request) -> Response:
        envelopes = parse_envelopes(req.body_bytes())
        if envelopes is None:
            return json_response(
                400,
                {
                    "itemsReceived": 0,
                    "itemsAccepted": 0,
                    "errors": [{"index": 0, "statusCode": 400, "message": "Invalid JSON"}],
                },
            )
        self.emu.record_telemetry(envelopes)
        return json_response(200, {"itemsReceived": len(envelopes), "itemsAccepted": len(envelopes), "errors": []})
