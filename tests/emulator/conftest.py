"""Fixtures for the emulator's wire tests: emulators started per test and always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulator import Emulator


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def make(scenario: Any = None) -> Emulator:
        emu = Emulator(scenario).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def ca_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[Emulator], None]:
    """Point requests-based libraries (msal, azure-identity) at the emulator's CA, as REQUESTS_CA_BUNDLE does."""

    def apply(emu: Emulator) -> None:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_bundle)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    return apply
