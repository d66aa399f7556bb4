"""Where the activity watch's state lives for a run, and the evidence report's view of it.

The Function App keeps it in a table of its storage account, the command line in a SQLite file (`--state PATH`,
else WATCH_STATE_PATH, else under the user's state directory). The watch opens (and creates) it; a check or report
only reads an existing one: no state means no activity section, never an empty one that would read as "no alerts".
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from shared.activity import history
from shared.activity.sqlite_store import SqliteStateStore
from shared.activity.state import StateError, StateStore
from shared.activity.table_store import TableStateStore
from shared.config.loader import RunSettings

log = logging.getLogger("mailbox_audit_guard.state")

CLOUD_TRIGGERS = ("timer", "http", "queue")  # the Function App's triggers: the state is its table


def open_store(config: RunSettings, trigger: str, state_path: str | None = None) -> StateStore:
    """The Function App's table in its storage account; a SQLite file for the command line (`--state PATH`)."""
    if trigger in CLOUD_TRIGGERS:
        return TableStateStore.open(config.storage, config.watch_state.table_name, retry_total=1)
    return SqliteStateStore(config.watch_state.sqlite_path(state_path))


def open_existing_store(
    config: RunSettings, trigger: str, state_path: str | None = None
) -> tuple[StateStore, str] | None:
    """The state and a name for it (a path or a table; never a connection string) when the watch has written
    one, else None. StateError when it exists but cannot be opened."""
    if trigger in CLOUD_TRIGGERS:
        if not (config.storage.connection_string or config.storage.table_url):
            return None  # no storage account configured: there can be no state
        table = config.watch_state.table_name
        store = TableStateStore.open_existing(config.storage, table, retry_total=1)
        return (store, f"table {table}") if store is not None else None
    path = config.watch_state.sqlite_path(state_path)
    return (SqliteStateStore(path), str(path)) if path.is_file() else None


def activity_section(
    config: RunSettings, trigger: str, state_path: str | None = None, now: datetime | None = None
) -> dict[str, Any] | None:
    """The evidence document's `activity` section (shared.activity.history.summary), None without a state.

    An unreadable state is a section that says so (`error`): the report must not suggest a quiet feed."""
    try:
        opened = open_existing_store(config, trigger, state_path)
        if opened is None:
            return None
        store, source = opened
        with contextlib.closing(store):
            return history.summary(
                store, config.exchange.tenant_id, config.feed.content_types, now or datetime.now(UTC), source=source
            )
    except StateError as exc:
        log.error("The activity watch's state could not be read for the evidence report: %s", exc)
        return {"error": f"the activity watch's state could not be read: {exc}", "health": "Error"}
