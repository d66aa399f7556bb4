"""Shared fixtures: the emulated tenant on real sockets, and a guard that keeps every test off the network."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TENANT_ID = "0b5c1c1e-1111-2222-3333-444455556666"

_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse to resolve anything but loopback names: a test that tries to reach the real cloud fails loudly."""

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("localhost", "127.0.0.1", "::1", "") and not name.startswith("127."):
            raise OSError(f"test tried to resolve non-loopback host {name!r}")
        return _real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


def scenario(**overrides: Any) -> dict[str, Any]:
    """A tenant scenario: compliant defaults, overridden per test."""
    base: dict[str, Any] = {
        "tenant_id": TENANT_ID,
        "organization": "contoso.onmicrosoft.com",
        "organization_config": {"Name": "contoso.onmicrosoft.com", "AuditDisabled": False, "IsDehydrated": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Any]]:
    """Start emulators for a test (`start_emulator(scenario_dict)`); all are stopped afterwards."""
    from emulator import Emulator

    started: list[Any] = []

    def start(tenant: dict[str, Any] | None = None) -> Any:
        emu = Emulator(tenant or scenario()).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def clean_env() -> dict[str, str]:
    """The parent environment without anything that could point a child at a real tenant or credential."""
    drop = ("EXO_", "IDENTITY_", "MSI_", "AZURE_", "APPLICATIONINSIGHTS_", "REQUESTS_CA_BUNDLE", "OTEL_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def run_cli(emu: Any, *args: str, auth_mode: str = "secret", env: dict[str, str] | None = None,
            timeout: float = 60, keep_telemetry: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `python -m shared ...` in a child process against the emulator, as a person would.

    Telemetry is off unless `keep_telemetry` (then `env` should carry the hermetic exporter settings)."""
    child_env = {**clean_env(), **(emu.env(auth_mode) if emu is not None else {})}
    if not keep_telemetry:
        child_env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    child_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=REPO, env=child_env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def cli_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The single JSON document a `--json` run prints."""
    return json.loads(result.stdout)


def tenant_traffic(emu: Any) -> list[Any]:
    """Requests that reached Exchange or the identity endpoints (telemetry ingestion excluded)."""
    return [request for request in emu.requests if request.listener != "ingestion"]


# Azurite (local Blob Storage) for every test that needs the app's storage account; defined with the report tests.
from tests.report.conftest import azurite  # noqa: E402, F401
