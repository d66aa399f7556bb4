"""The suite-wide fixtures (loaded through `pytest_plugins` in tests/conftest.py): emulators started per test
and always stopped, and a guard that keeps every test off the network."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.exchange.auth import forget_cached_tokens
from tests.support.tenant import scenario

_real_getaddrinfo = socket.getaddrinfo


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """An end-to-end test (a child process) is a slow one: `-m "not slow"` leaves it out without a second mark."""
    for item in items:
        if item.get_closest_marker("e2e") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse to resolve anything but loopback names: a test that tries to reach the real cloud fails loudly."""

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("localhost", "127.0.0.1", "::1", "") and not name.startswith("127."):
            raise OSError(f"test tried to resolve non-loopback host {name!r}")
        return _real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Any]]:
    """Start emulators for a test (`start_emulator(scenario_dict)`); all are stopped afterwards."""
    from emulator import Emulator

    started: list[Any] = []

    def start(tenant: Any = None) -> Any:
        emu = Emulator(tenant or scenario()).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()
    forget_cached_tokens()  # federated_identity keeps tokens per process: none may outlive its emulator


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Any]]:
    """Like start_emulator, but None means the emulator's own default tenant (for the emulator's wire tests)."""
    from emulator import Emulator

    started: list[Any] = []

    def make(tenant: Any = None) -> Any:
        emu = Emulator(tenant).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()
    forget_cached_tokens()


@pytest.fixture
def ca_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    """Point requests-based libraries (msal, azure-identity) at the emulator's CA, as REQUESTS_CA_BUNDLE does."""

    def apply(emu: Any) -> None:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_bundle)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    return apply


@pytest.fixture(scope="session")
def bicep() -> dict[str, dict[str, Any]]:
    """Every Bicep file under infra/, parsed by pycep-parser, keyed by its path relative to infra/."""
    from tests.infra.validators import BICEP_FILES, INFRA, parse_bicep

    return {path.relative_to(INFRA).as_posix(): parse_bicep(path) for path in BICEP_FILES}
