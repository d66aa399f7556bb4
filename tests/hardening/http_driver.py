"""Many calls of the real remediation function in ONE process, in lockstep with the test.

The test writes one request per line on stdin and reads one answer per line on stdout, so it can look at the
emulator between two requests (what did this request write?). Per request it sets the app settings the endpoint
reads on every call (WEBSITE_AUTH_ENABLED, REMEDIATION_ALLOW_KEY_ONLY, AUDIT_MODE); the connection settings come
from the environment the test started it with (tests/functions/harness.function_env).

Request line: {"method": str, "headers": {..}, "body": base64, "env": {name: value}}.
Answer line:  {"status": int, "mimetype": str, "body": str, "headers": {..}}; an exception out of the function is
answered as the Functions host would: status 500, with what was raised.
Usage: python -m tests.hardening.http_driver
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys

import azure.functions as func

APP_SETTINGS = ("WEBSITE_AUTH_ENABLED", "REMEDIATION_ALLOW_KEY_ONLY", "AUDIT_MODE")


def answer(line: str) -> dict:
    import function_app

    request = json.loads(line)
    for name in APP_SETTINGS:
        os.environ.pop(name, None)
    os.environ.update(request["env"])
    http_request = func.HttpRequest(
        method=request["method"],
        url="/api/remediate",
        headers=request["headers"],
        params={},
        route_params={},
        body=base64.b64decode(request["body"]),
    )
    try:
        response = function_app.remediate(http_request)
    except Exception as exc:  # the host turns an escaped exception into a 500
        return {"status": 500, "mimetype": "", "body": f"{type(exc).__name__}: {exc}"[:2000], "headers": {}}
    return {
        "status": response.status_code,
        "mimetype": response.mimetype,
        "body": (response.get_body() or b"").decode("utf-8", "replace"),
        "headers": dict(response.headers),
    }


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(answer(line)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
