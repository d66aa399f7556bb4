"""What each backend adds to the shared suite: SQLite's file (two processes, permissions, a foreign file) and
Table Storage's access (identity-based endpoints, errors without secrets), plus the watch-state settings."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.activity.sqlite_store import SqliteStateStore
from shared.activity.state import StateError
from shared.activity.table_store import TableStateStore, table_client
from shared.config.loader import StorageSettings, load, watch_state_for
from shared.config.settings import ConfigError
from tests.support.report_tools import REPO, table_connection_string

TENANT = "0b5c1c1e-1111-2222-3333-444455556666"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

# ---------------------------------------------------------------------------------------------------- SQLite

WRITER = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from shared.activity.sqlite_store import SqliteStateStore
    store = SqliteStateStore(sys.argv[1])
    me, now, claimed = sys.argv[2], datetime(2026, 11, 28, tzinfo=UTC), []
    for index in range(150):
        store.mark_processed("t", f"{me}-blob-{index}", [f"{me}-rec-{index}", "shared-rec"], now)
        claimed += sorted(store.claim_alerts("t", [f"alert-{index}"], now))
        store.record_failure("t", "Audit.Exchange", "flaky", now, me, now)
        store.put_value("t", f"ledger/{me}/{index}", str(index))
    print(json.dumps(claimed))
    """
)


@pytest.mark.slow
def test_two_processes_write_one_file_at_once_without_losing_anything(tmp_path):
    path = tmp_path / "watch.sqlite3"
    SqliteStateStore(path).close()  # created first, so neither child races the schema
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for name in ("a", "b")
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    claims = [set(json.loads(out)) for out, _ in outputs]
    assert claims[0] | claims[1] == {f"alert-{index}" for index in range(150)}
    assert claims[0] & claims[1] == set()  # every alert reported by exactly one of them

    store = SqliteStateStore(path)
    blobs = [f"{me}-blob-{index}" for me in "ab" for index in range(150)]
    assert store.known_content("t", blobs) == set(blobs)
    assert [failed.attempts for failed in store.failures("t")] == [300]
    assert len(store.values("t", "ledger/")) == 300
    store.close()


def test_the_file_is_private_and_in_wal_mode(tmp_path):
    path = tmp_path / "new" / "dir" / "watch.sqlite3"
    SqliteStateStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_state_is_refused_by_name(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not SQLite, it is someone's notes" * 100)
    with pytest.raises(StateError, match="not a usable SQLite database"):
        SqliteStateStore(junk)
    newer = tmp_path / "newer.sqlite3"
    SqliteStateStore(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="schema version 99"):
        SqliteStateStore(newer)


def test_a_path_that_cannot_be_created_is_a_state_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot open the watch state"):
        SqliteStateStore(blocker / "watch.sqlite3")


# ---------------------------------------------------------------------------------------------------- Table Storage


def test_a_wrong_account_key_is_a_state_error_without_the_key(azurite_tables):
    wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc="
    storage = StorageSettings(connection_string=table_connection_string(azurite_tables.port, wrong_key))
    with pytest.raises(StateError) as raised:
        TableStateStore.open(storage, f"watch{uuid.uuid4().hex[:12]}", retry_total=0)
    rendered = "".join(traceback.format_exception(raised.value))
    assert "HTTP 403" in str(raised.value)
    for secret in (wrong_key, "AccountKey", "Signature"):
        assert secret not in rendered


def test_an_unreachable_table_service_is_a_state_error(tmp_path):
    from tests.support.report_tools import free_port

    storage = StorageSettings(connection_string=table_connection_string(free_port()))
    with pytest.raises(StateError, match="unreachable"):
        TableStateStore.open(storage, "watchunreachable", retry_total=0)


def test_identity_based_access_uses_the_table_endpoint_of_the_account_and_the_managed_identity():
    account = StorageSettings(account_name="stmag01", client_id="11111111-2222-3333-4444-555555555555")
    client = table_client(account, "MailboxAuditWatch", retry_total=0)
    assert client.url.startswith("https://stmag01.table.core.windows.net")
    assert type(client.credential).__name__ == "ManagedIdentityCredential"
    sovereign = StorageSettings(
        blob_service_uri="https://stmag01.blob.core.usgovcloudapi.net",
        table_service_uri="https://stmag01.table.core.usgovcloudapi.net",
    )
    assert table_client(sovereign, "MailboxAuditWatch").url.startswith("https://stmag01.table.core.usgovcloudapi.net")
    with pytest.raises(StateError, match="tableServiceUri must be set"):
        table_client(StorageSettings(blob_service_uri="https://stmag01.blob.core.usgovcloudapi.net"), "T")
    with pytest.raises(StateError, match="no storage account"):
        table_client(StorageSettings(), "T")


# ---------------------------------------------------------------------------------------------------- settings


def test_watch_state_settings_defaults_and_overrides(tmp_path):
    defaults = load({"EXO_TENANT_ID": TENANT}).watch_state
    assert (defaults.table_name, defaults.first_lookback_hours, defaults.state_path) == ("MailboxAuditWatch", 24, None)
    assert defaults.sqlite_path() == Path.home() / ".local/state/mailbox-audit-guard/watch.sqlite3"
    xdg = watch_state_for({"XDG_STATE_HOME": str(tmp_path)})
    assert xdg.sqlite_path() == tmp_path / "mailbox-audit-guard" / "watch.sqlite3"
    assert watch_state_for({"XDG_STATE_HOME": "relative/dir"}).sqlite_path() == defaults.sqlite_path()  # XDG rule
    explicit = watch_state_for({"XDG_STATE_HOME": str(tmp_path), "WATCH_STATE_PATH": "/srv/watch.db"})
    assert explicit.sqlite_path() == Path("/srv/watch.db")
    assert explicit.sqlite_path("~/cli.db") == Path.home() / "cli.db"  # --state wins
    tuned = watch_state_for({"WATCH_TABLE_NAME": "Watch2", "WATCH_FIRST_LOOKBACK_HOURS": "168"})
    assert (tuned.table_name, tuned.first_lookback_hours) == ("Watch2", 168)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WATCH_TABLE_NAME", "1table"),
        ("WATCH_TABLE_NAME", "no-hyphens"),
        ("WATCH_TABLE_NAME", "ab"),
        ("WATCH_FIRST_LOOKBACK_HOURS", "169"),
        ("WATCH_FIRST_LOOKBACK_HOURS", "0"),
        ("AzureWebJobsStorage__tableServiceUri", "http://stmag01.table.core.windows.net"),
        ("AzureWebJobsStorage__tableServiceUri", "https://stmag01.table.core.windows.net/?sig=abc"),
    ],
)
def test_bad_watch_state_settings_are_refused_by_name(name, value):
    with pytest.raises(ConfigError) as raised:
        load({"EXO_TENANT_ID": TENANT, "AzureWebJobsStorage__accountName": "stmag01", name: value})
    assert set(raised.value.problems) == {name}
    assert "abc" not in str(raised.value)
