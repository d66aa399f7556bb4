"""Run function invocations in child processes against the emulator, with the real exporter posting telemetry."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support.cli import clean_env
from tests.support.tenant import REPO

# The functions function_app.py must define: the single-tenant three and the many-tenant fan-out (two dispatch
# timers, two queue triggers). Written out here, not read from the app, so a lost or extra function fails.
OUR_FUNCTIONS = frozenset(
    {
        "daily_audit_check",
        "activity_watch",
        "remediate",
        "daily_audit_dispatch",
        "tenant_audit_check",
        "activity_watch_dispatch",
        "tenant_activity_watch",
    }
)

HERMETIC_TELEMETRY = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_OPENTELEMETRY_RESOURCE_METRIC_DISABLED": "true",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "azure_app_service",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_SERVICE_NAME": "mailbox-audit-guard",
}


def function_env(
    emu: Any, *, telemetry: bool = True, auth_mode: str = "managed_identity", **extra: str
) -> dict[str, str]:
    env = {
        **clean_env(),
        **(emu.env(auth_mode) if emu is not None else {}),
        **HERMETIC_TELEMETRY,
        "AUDIT_SCHEDULE": "0 0 6 * * *",
        "WATCH_SCHEDULE": "0 */10 * * * *",
        "EXO_RETRY_BACKOFF_SECONDS": "0.05",
        "TELEMETRY_STORAGE_DIRECTORY": tempfile.mkdtemp(prefix="mag-telemetry-"),
    }
    if not telemetry:
        env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    env.update(extra)
    return env


def run_timer(
    emu: Any, *, timeout: float = 60, function: str = "timer", **env: str
) -> subprocess.CompletedProcess[str]:
    """Invoke a timer function in a child process: `function` "timer" (daily_audit_check) or "watch"
    (activity_watch)."""
    return subprocess.run(
        [sys.executable, "scripts/invoke_function.py", function],
        cwd=REPO,
        env=function_env(emu, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def call_http(
    emu: Any,
    body: bytes | str = b"",
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    timeout: float = 60,
    concurrent: int = 1,
    **env: str,
) -> Any:
    """Call the remediation function in a child process; returns status, body and headers of the answer
    (a list of answers when `concurrent` > 1)."""
    with tempfile.NamedTemporaryFile(delete=False, suffix=".body") as handle:
        handle.write(body.encode() if isinstance(body, str) else body)
    result = subprocess.run(
        [
            sys.executable,
            "scripts/invoke_function.py",
            "http",
            method,
            handle.name,
            json.dumps(headers or {}),
            str(concurrent),
        ],
        cwd=REPO,
        env=function_env(emu, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    Path(handle.name).unlink()
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def events(emu: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Custom events that reached the ingestion endpoint: {'name', 'properties', 'measurements'}."""
    found = []
    for envelope in emu.telemetry:
        data = envelope.get("data", {})
        if data.get("baseType") == "EventData":
            base = data["baseData"]
            if name is None or base.get("name") == name:
                found.append(
                    {
                        "name": base.get("name"),
                        "properties": base.get("properties", {}),
                        "measurements": base.get("measurements", {}),
                        "tags": envelope.get("tags", {}),
                    }
                )
    return found


def exceptions(emu: Any) -> list[dict[str, Any]]:
    return [
        envelope["data"]["baseData"]
        for envelope in emu.telemetry
        if envelope.get("data", {}).get("baseType") == "ExceptionData"
    ]
