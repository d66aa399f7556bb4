"""Runs one function invocation in a fresh process, as the worker would call the user code.

OpenTelemetry's providers are global and set once per process, so every telemetry test gets its own process.
Used by `make demo` and the tests. Usage:
       python scripts/invoke_function.py timer [--past-due]
       python scripts/invoke_function.py watch [--past-due]   (the activity_watch timer)
       python scripts/invoke_function.py http METHOD BODY_FILE HEADERS_JSON [CONCURRENT_CALLS]
Several concurrent calls run on threads of one process, as the worker's thread pool runs them.
"""

from __future__ import annotations

import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import azure.functions as func
from azure.functions.timer import TimerRequest


def main(argv: list[str]) -> int:
    # The worker forwards every log record to the host's log stream; stderr stands in for it here.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs' request-by-request INFO lines are noise here
    import function_app

    if argv[0] == "timer":
        function_app.daily_audit_check(TimerRequest(past_due="--past-due" in argv))
        return 0
    if argv[0] == "watch":
        function_app.activity_watch(TimerRequest(past_due="--past-due" in argv))
        return 0
    method, body_file, headers = argv[1], argv[2], json.loads(argv[3])
    calls = int(argv[4]) if len(argv) > 4 else 1

    def call(_: int) -> dict:
        request = func.HttpRequest(
            method=method,
            url="/api/remediate",
            headers=headers,
            params={},
            route_params={},
            body=Path(body_file).read_bytes(),
        )
        response = function_app.remediate(request)
        return {
            "status": response.status_code,
            "mimetype": response.mimetype,
            "body": json.loads(response.get_body() or b"null"),
            "headers": dict(response.headers),
        }

    with ThreadPoolExecutor(max_workers=calls) as pool:
        answers = list(pool.map(call, range(calls)))
    print(json.dumps(answers if calls > 1 else answers[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
