"""The watch state in one SQLite file (the command line's default): standard library only.

WAL journal (readers never wait for a writer), `synchronous=NORMAL`, a 30 s busy timeout, and every write in one
`BEGIN IMMEDIATE` transaction, so two processes on the same file (a timer and an administrator's `watch`) never
corrupt it nor fail with "database is locked" under normal contention. The directory is created private (0700) and
the file 0600: it holds user names and mailbox names.

The default path: `$XDG_STATE_HOME/mailbox-audit-guard/watch.sqlite3`, else
`~/.local/state/mailbox-audit-guard/watch.sqlite3` (shared.config.loader.default_state_path).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.activity.state import (
    FailedBlob,
    Gap,
    StateError,
    StateStore,
    baseline_json,
    baseline_texts,
    check_key,
    check_value,
    decode_time,
    encode_time,
    error_text,
)

SCHEMA_VERSION = 1
_CHUNK = 500  # ids per `IN (...)`: far below SQLite's variable limit
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS content_types (
    tenant TEXT NOT NULL, content_type TEXT NOT NULL, listed_until TEXT, subscription_started TEXT,
    PRIMARY KEY (tenant, content_type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_content (
    tenant TEXT NOT NULL, content_id TEXT NOT NULL, seen TEXT NOT NULL, PRIMARY KEY (tenant, content_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_content_by_time ON seen_content (tenant, seen);
CREATE TABLE IF NOT EXISTS seen_records (
    tenant TEXT NOT NULL, record_id TEXT NOT NULL, seen TEXT NOT NULL, PRIMARY KEY (tenant, record_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_records_by_time ON seen_records (tenant, seen);
CREATE TABLE IF NOT EXISTS failed_blobs (
    tenant TEXT NOT NULL, content_id TEXT NOT NULL, content_type TEXT NOT NULL, created TEXT NOT NULL,
    attempts INTEGER NOT NULL, last_error TEXT NOT NULL, first_failed TEXT NOT NULL, last_failed TEXT NOT NULL,
    PRIMARY KEY (tenant, content_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gaps (
    tenant TEXT NOT NULL, gap_key TEXT NOT NULL, content_type TEXT NOT NULL, reason TEXT NOT NULL,
    start TEXT NOT NULL, end TEXT NOT NULL, detail TEXT NOT NULL, recorded TEXT NOT NULL, content_id TEXT,
    PRIMARY KEY (tenant, gap_key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS baselines (
    tenant TEXT NOT NULL, user_key TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (tenant, user_key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    tenant TEXT NOT NULL, alert_id TEXT NOT NULL, reported TEXT NOT NULL, PRIMARY KEY (tenant, alert_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    tenant TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (tenant, key)) WITHOUT ROWID;
"""


class SqliteStateStore:
    """`StateStore` in a SQLite file. One instance per thread; any number of processes on one file."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_seconds: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.exists():
                # Created 0600 before SQLite opens it; O_EXCL-free so a second process racing here is fine.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            # One connection, guarded by a lock: usable from any thread (one transaction at a time).
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the watch state {self.path}: {_reason(exc)}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
            with self._write() as db:  # not executescript: it would COMMIT the transaction
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif row[0] != str(SCHEMA_VERSION):
                    raise StateError(
                        f"the watch state {self.path} has schema version {row[0]}, this version reads "
                        f"{SCHEMA_VERSION}; use another --state path or upgrade"
                    )
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StateError(f"the watch state {self.path} is not a usable SQLite database: {_reason(exc)}") from None

    # -- plumbing

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so it never deadlocks on lock upgrade."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StateError(f"cannot write the watch state {self.path}: {_reason(exc)}") from None
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise StateError(f"cannot write the watch state {self.path}: {_reason(exc)}") from None

    def _read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise StateError(f"cannot read the watch state {self.path}: {_reason(exc)}") from None

    def _existing(self, table: str, column: str, tenant: str, ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {column} FROM {table} WHERE tenant = ? AND {column} IN ({marks})"  # noqa: S608 - names are ours
            found.update(row[0] for row in self._read(sql, (tenant, *chunk)))
        return found

    def _set_content_type(self, tenant: str, content_type: str, column: str, moment: datetime) -> None:
        check_key("content type", content_type)
        with self._write() as db:
            db.execute(
                f"INSERT INTO content_types (tenant, content_type, {column}) VALUES (?, ?, ?) "  # noqa: S608
                f"ON CONFLICT (tenant, content_type) DO UPDATE SET {column} = excluded.{column}",
                (tenant, content_type, encode_time(moment)),
            )

    def _content_type(self, tenant: str, content_type: str, column: str) -> datetime | None:
        sql = f"SELECT {column} FROM content_types WHERE tenant = ? AND content_type = ?"  # noqa: S608
        rows = self._read(sql, (tenant, content_type))
        return decode_time(rows[0][0]) if rows and rows[0][0] else None

    # -- per content type

    def checkpoint(self, tenant: str, content_type: str) -> datetime | None:
        return self._content_type(tenant, content_type, "listed_until")

    def set_checkpoint(self, tenant: str, content_type: str, listed_until: datetime) -> None:
        self._set_content_type(tenant, content_type, "listed_until", listed_until)

    def subscription_started(self, tenant: str, content_type: str) -> datetime | None:
        return self._content_type(tenant, content_type, "subscription_started")

    def set_subscription_started(self, tenant: str, content_type: str, started: datetime) -> None:
        self._set_content_type(tenant, content_type, "subscription_started", started)

    # -- content blobs and records

    def known_content(self, tenant: str, content_ids: Iterable[str]) -> set[str]:
        return self._existing("seen_content", "content_id", tenant, content_ids)

    def known_records(self, tenant: str, record_ids: Iterable[str]) -> set[str]:
        return self._existing("seen_records", "record_id", tenant, record_ids)

    def mark_processed(self, tenant: str, content_id: str, record_ids: Iterable[str], seen: datetime) -> None:
        check_key("content id", content_id)
        when = encode_time(seen)
        records = [(tenant, check_key("record id", record_id), when) for record_id in record_ids]
        with self._write() as db:  # one transaction: records and blob together
            db.executemany("INSERT OR REPLACE INTO seen_records VALUES (?, ?, ?)", records)
            db.execute("INSERT OR REPLACE INTO seen_content VALUES (?, ?, ?)", (tenant, content_id, when))
            db.execute("DELETE FROM failed_blobs WHERE tenant = ? AND content_id = ?", (tenant, content_id))

    # -- failures and gaps

    def failures(self, tenant: str) -> list[FailedBlob]:
        rows = self._read(
            "SELECT content_type, content_id, created, attempts, last_error, first_failed, last_failed "
            "FROM failed_blobs WHERE tenant = ? ORDER BY created, content_id",
            (tenant,),
        )
        return [_failed(row) for row in rows]

    def record_failure(
        self, tenant: str, content_type: str, content_id: str, created: datetime, error: str, at: datetime
    ) -> FailedBlob:
        check_key("content id", content_id)
        when, text = encode_time(at), error_text(error)
        with self._write() as db:
            db.execute(
                "INSERT INTO failed_blobs VALUES (?, ?, ?, ?, 1, ?, ?, ?) ON CONFLICT (tenant, content_id) DO UPDATE "
                "SET attempts = attempts + 1, last_error = excluded.last_error, last_failed = excluded.last_failed",
                (tenant, content_id, content_type, encode_time(created), text, when, when),
            )
            row = db.execute(
                "SELECT content_type, content_id, created, attempts, last_error, first_failed, last_failed "
                "FROM failed_blobs WHERE tenant = ? AND content_id = ?",
                (tenant, content_id),
            ).fetchone()
        return _failed(row)

    def clear_failure(self, tenant: str, content_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM failed_blobs WHERE tenant = ? AND content_id = ?", (tenant, content_id))

    def add_gap(self, tenant: str, gap: Gap) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO gaps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant,
                    gap.key,
                    gap.content_type,
                    gap.reason,
                    encode_time(gap.start),
                    encode_time(gap.end),
                    error_text(gap.detail),
                    encode_time(gap.recorded),
                    gap.content_id,
                ),
            )
            return cursor.rowcount == 1

    def gaps(self, tenant: str, since: datetime) -> list[Gap]:
        rows = self._read(
            "SELECT content_type, reason, start, end, detail, recorded, content_id FROM gaps "
            "WHERE tenant = ? AND recorded >= ? ORDER BY recorded, gap_key",
            (tenant, encode_time(since)),
        )
        return [
            Gap(row[0], row[1], decode_time(row[2]), decode_time(row[3]), row[4], decode_time(row[5]), row[6])
            for row in rows
        ]

    # -- detections

    def baseline(self, tenant: str, user_key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT document FROM baselines WHERE tenant = ? AND user_key = ?", (tenant, user_key))
        return dict(json.loads(rows[0][0])) if rows else None

    def put_baseline(self, tenant: str, user_key: str, document: Mapping[str, Any]) -> None:
        check_key("user key", user_key)
        text = baseline_json(document)
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO baselines VALUES (?, ?, ?)", (tenant, user_key, text))

    def put_baselines(self, tenant: str, documents: Mapping[str, Mapping[str, Any]]) -> None:
        texts = baseline_texts(documents)
        if not texts:
            return
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?)",
                [(tenant, key, text) for key, text in texts.items()],
            )

    def claim_alerts(self, tenant: str, alert_ids: Iterable[str], at: datetime) -> set[str]:
        when, claimed = encode_time(at), set()
        ids = [check_key("alert id", alert_id) for alert_id in dict.fromkeys(alert_ids)]
        with self._write() as db:
            for alert_id in ids:
                if db.execute("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?)", (tenant, alert_id, when)).rowcount:
                    claimed.add(alert_id)
        return claimed

    # -- key/value area

    def value(self, tenant: str, key: str) -> str | None:
        rows = self._read("SELECT value FROM kv WHERE tenant = ? AND key = ?", (tenant, key))
        return str(rows[0][0]) if rows else None

    def put_value(self, tenant: str, key: str, value: str) -> None:
        check_key("key", key)
        check_value(value)
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (tenant, key, value))

    def delete_value(self, tenant: str, key: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM kv WHERE tenant = ? AND key = ?", (tenant, key))

    def values(self, tenant: str, prefix: str = "") -> dict[str, str]:
        # substr, not LIKE: a prefix may hold % or _
        rows = self._read(
            "SELECT key, value FROM kv WHERE tenant = ? AND substr(key, 1, ?) = ? ORDER BY key",
            (tenant, len(prefix), prefix),
        )
        return {str(key): str(value) for key, value in rows}

    # -- housekeeping

    def prune(self, tenant: str, *, seen_before: datetime, alerts_before: datetime) -> int:
        seen, alerts = encode_time(seen_before), encode_time(alerts_before)
        with self._write() as db:
            removed = db.execute("DELETE FROM seen_records WHERE tenant = ? AND seen < ?", (tenant, seen)).rowcount
            removed += db.execute("DELETE FROM seen_content WHERE tenant = ? AND seen < ?", (tenant, seen)).rowcount
            removed += db.execute("DELETE FROM alerts WHERE tenant = ? AND reported < ?", (tenant, alerts)).rowcount
        return int(removed)

    def close(self) -> None:
        self._db.close()


def _failed(row: tuple[Any, ...]) -> FailedBlob:
    return FailedBlob(
        content_type=row[0],
        content_id=row[1],
        created=decode_time(row[2]),
        attempts=int(row[3]),
        last_error=row[4],
        first_failed=decode_time(row[5]),
        last_failed=decode_time(row[6]),
    )


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _conforms(store: SqliteStateStore) -> StateStore:
    """Never called: mypy checks here that the backend implements the whole interface, exactly."""
    return store
