"""The two real state backends as fixtures: SQLite in a temporary directory, Table Storage on a real Azurite.

`store` is parametrized over both, so every test that takes it runs twice and the backends cannot drift;
`open_store` opens another instance on the same state (a second process, a restart).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.activity.sqlite_store import SqliteStateStore
from shared.activity.state import StateStore
from shared.activity.table_store import TableStateStore
from shared.config.loader import StorageSettings

BACKENDS = ["sqlite", "table"]


def _opener(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], StateStore]:
    if backend == "sqlite":
        path = tmp_path / "state" / "watch.sqlite3"
        return lambda: SqliteStateStore(path)
    azurite: Any = request.getfixturevalue("azurite_tables")
    table = f"watch{uuid.uuid4().hex[:16]}"
    storage = StorageSettings(connection_string=azurite.connection_string)
    return lambda: TableStateStore.open(storage, table, retry_total=0)


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], StateStore]]:
    """Open (another) store on one fresh state of the backend; every store opened is closed afterwards."""
    opener, opened = _opener(request.param, tmp_path, request), []

    def open_one() -> StateStore:
        store = opener()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], StateStore]) -> StateStore:
    return open_store()
