"""Real tools for the evidence report tests: Azurite (local Blob, Table and Queue Storage) and headless Chromium.

A `pytest_plugins` module: its `azurite` fixture serves every test that needs the app's blob storage, its
`azurite_tables` fixture those that need its Table Storage (the activity watch's state).

Both come from tools/install-report-tools.sh. When one is missing the tests FAIL, never skip: a green run must
mean the report was really rendered by a browser and really archived.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AZURITE_DIR = REPO / "tools" / "azurite"
AZURITE_PACKAGE = AZURITE_DIR / "node_modules" / "azurite" / "package.json"
AZURITE_VERSION = "3.35.0"
INSTALL_HINT = "run tools/install-report-tools.sh (installs the pinned Azurite and Debian's chromium)"
# Azurite's well-known development account (public, documented by Microsoft; not a secret of ours).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connection_string(port: int, key: str = DEV_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )


def table_connection_string(port: int, key: str = DEV_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={key};"
        f"TableEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )


def require_chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(f"chromium is not on PATH: {INSTALL_HINT}", pytrace=False)
    return path


def _require_azurite() -> str:
    npx = shutil.which("npx")
    if npx is None:
        pytest.fail(f"npx (Node.js 20 or newer) is not on PATH: install Node.js, then {INSTALL_HINT}", pytrace=False)
    try:
        version = json.loads(AZURITE_PACKAGE.read_text())["version"]
    except (OSError, ValueError, KeyError):
        pytest.fail(f"Azurite not found under tools/azurite/node_modules: {INSTALL_HINT}", pytrace=False)
    if version != AZURITE_VERSION:
        pytest.fail(f"Azurite {version} installed, {AZURITE_VERSION} pinned: {INSTALL_HINT}", pytrace=False)
    return npx


@dataclass
class Azurite:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    service: str = "blob"

    @property
    def connection_string(self) -> str:
        if self.service == "queue":
            return (
                f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
                f"QueueEndpoint=http://127.0.0.1:{self.port}/{DEV_ACCOUNT};"
            )
        return table_connection_string(self.port) if self.service == "table" else connection_string(self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # npx, npm exec and node: the group this fixture started
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_azurite(workdir: Path, timeout: float = 30, service: str = "blob") -> Azurite:
    """Azurite's blob (or table) service on a free loopback port, in memory, in its own process group; polled until
    it listens."""
    npx = _require_azurite()
    port = free_port()
    log = workdir / f"azurite-{service}.log"
    # `--` keeps npm from taking Azurite's flags (--silent, --loose) as its own. --no: never download anything.
    command = [
        npx,
        "--prefix",
        str(AZURITE_DIR),
        "--no",
        "--",
        f"azurite-{service}",
        "--silent",
        "--inMemoryPersistence",
    ]
    if service == "blob":
        command += ["--extentMemoryLimit", "256"]
    command += [
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        f"--{service}Host",
        "127.0.0.1",
        f"--{service}Port",
        str(port),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    azurite = Azurite(port, process, log, service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Azurite exited with {process.returncode}: {log.read_text()[-2000:]}", pytrace=False)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return azurite
        except OSError:
            time.sleep(0.05)
    azurite.stop()
    pytest.fail(
        f"Azurite did not listen on 127.0.0.1:{port} within {timeout:g} s: {log.read_text()[-2000:]}", pytrace=False
    )


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite for the session (each test uses its own container)."""
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_queues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite Queue service for the session (each test uses its own queues)."""
    server = start_azurite(tmp_path_factory.mktemp("azurite-queues"), service="queue")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_tables(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite Table service for the session (each test uses its own table or tenant)."""
    server = start_azurite(tmp_path_factory.mktemp("azurite-tables"), service="table")
    yield server
    server.stop()
