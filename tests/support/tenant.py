"""The emulated tenant the tests use: its id, scenario builder and the traffic it saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TENANT_ID = "0b5c1c1e-1111-2222-3333-444455556666"


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


def tenant_traffic(emu: Any) -> list[Any]:
    """Requests that reached Exchange or the identity endpoints (telemetry ingestion excluded)."""
    return [request for request in emu.requests if request.listener != "ingestion"]
