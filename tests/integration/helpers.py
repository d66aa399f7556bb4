"""In-process client construction against a running emulator (real HTTP, real token libraries)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config.settings import Settings
from shared.exchange.auth import token_provider_for
from shared.exchange.client import ExchangeClient, RetryPolicy

FAST = RetryPolicy(max_attempts=5, deadline_seconds=20, backoff_base_seconds=0.05, backoff_cap_seconds=0.2)


def client_for(
    emu: Any, monkeypatch: pytest.MonkeyPatch, *, auth_mode: str = "secret", policy: RetryPolicy = FAST
) -> ExchangeClient:
    """An ExchangeClient configured exactly as the CLI would be from the emulator's environment."""
    env = emu.env(auth_mode)
    for name in ("REQUESTS_CA_BUNDLE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        if name in env:
            monkeypatch.setenv(name, env[name])
    settings = Settings.from_env(env)
    return ExchangeClient(settings.exchange_url, settings.tenant_id, token_provider_for(settings), policy=policy)


def bearer_tokens(emu: Any) -> set[str]:
    """Every bearer token the emulator saw: the values that must never leak anywhere else."""
    tokens = set()
    for request in emu.requests:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            tokens.add(header[7:])
    return tokens


# A test mailbox for diagnose's write test: its Owner list is customised (Owner is not in DefaultAuditSet), so an
# @{Add=...} of an action it already audits changes nothing.
CUSTOMISED_MAILBOX = {
    "Name": "probe",
    "UserPrincipalName": "probe@contoso.com",
    "RecipientTypeDetails": "UserMailbox",
    "DefaultAuditSet": ["Admin", "Delegate"],
    "AuditOwner": ["MailboxLogin", "HardDelete"],
    "AuditLogAgeLimit": "180.00:00:00",
}
