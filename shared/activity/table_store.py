"""The watch state in Azure Table Storage, in the function app's own storage account (the Function App's backend).

Access is the function app's: a connection string in `AzureWebJobsStorage` (Azurite, local development), or
identity-based like the evidence archive: `AzureWebJobsStorage__tableServiceUri`, else `__accountName` (the public
cloud's `table.core.windows.net`), with `__credential=managedidentity` and optionally `__clientId`. The identity
needs the **Storage Table Data Contributor** role on the account. One table (`WATCH_TABLE_NAME`, default
`MailboxAuditWatch`), created on first use; each kind of state is its own set of partitions:

| PartitionKey | RowKey | properties |
|---|---|---|
| `{tenant}|ct` | content type | `listed_until`, `subscription_started` |
| `{tenant}|content|{0-f}` | contentId | `seen` |
| `{tenant}|rec|{0-f}` | record `Id` | `seen` |
| `{tenant}|alert|{0-f}` | alert id | `reported` |
| `{tenant}|failed` | contentId | `content_type`, `created`, `attempts`, `last_error`, `first_failed`, `last_failed` |
| `{tenant}|gap` | `Gap.key` | the gap's fields |
| `{tenant}|baseline` | user key | `document` (JSON) |
| `{tenant}|kv` | key | `value` |

Keys are percent-encoded (Table keys may not hold `/ \\ # ?` or control characters). Ids are spread over 16
partitions by hash so lookups (14 row keys per query) and writes (batches of up to 100 per partition) stay cheap.
Times are stored as fixed-width UTC text (shared.activity.state.encode_time), so they compare as text.

azure.data.tables is imported on first use only. Errors are `StateError`s from safe parts (status, error code):
never a key, SAS token or connection string.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from shared.activity.state import (
    FailedBlob,
    Gap,
    GapReason,
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
from shared.config.loader import DEFAULT_WATCH_TABLE, StorageSettings
from shared.storage_errors import storage_reason

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_ROW_KEYS_PER_QUERY = 14  # Table Storage allows 15 comparisons per filter: one for the partition, 14 row keys
_BATCH = 100  # operations per entity group transaction (one partition)
_BATCH_BYTES = 2_000_000  # payload per transaction, below the service's 4 MiB
_BUCKETS = 16
_FAILURE_RETRIES = 30  # optimistic-concurrency rounds for a failure's attempt count (jittered, at most ~1.5 s)


def _escape(text: str) -> str:
    return quote(text, safe="@._-")


def _bucket(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).hexdigest()[0]


class TableStateStore:
    """`StateStore` in one Azure table; safe for several instances at once (alert claims are atomic inserts)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    @classmethod
    def open(
        cls, storage: StorageSettings, table_name: str = DEFAULT_WATCH_TABLE, *, retry_total: int = 3
    ) -> TableStateStore:
        """The store in the app's storage account, its table created when missing."""
        from azure.core.exceptions import AzureError

        client = table_client(storage, table_name, retry_total=retry_total)
        try:
            with contextlib.suppress(_exists_error()):
                client.create_table()
        except AzureError as exc:
            client.close()
            raise StateError(f"cannot create the watch table {table_name}: {_reason(exc)}") from None
        return cls(client)

    @classmethod
    def open_existing(
        cls, storage: StorageSettings, table_name: str = DEFAULT_WATCH_TABLE, *, retry_total: int = 3
    ) -> TableStateStore | None:
        """The store when its table exists (the watch has run), else None; nothing is created."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        client = table_client(storage, table_name, retry_total=retry_total)
        try:
            next(iter(client.query_entities("PartitionKey eq '-'", select=["PartitionKey"])), None)
        except ResourceNotFoundError:
            client.close()
            return None
        except AzureError as exc:
            client.close()
            raise StateError(f"cannot read the watch table {table_name}: {_reason(exc)}") from None
        return cls(client)

    # -- plumbing

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        from azure.core.exceptions import AzureError

        try:
            yield
        except AzureError as exc:
            raise StateError(
                f"cannot {what} the watch state (table {self._table.table_name}): {_reason(exc)}"
            ) from None

    def _pk(self, tenant: str, kind: str, bucket: str | None = None) -> str:
        return f"{_escape(tenant)}|{kind}" + (f"|{bucket}" if bucket is not None else "")

    def _get(self, partition: str, row: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._calls("read"):
            try:
                return dict(self._table.get_entity(partition, _escape(row)))
            except ResourceNotFoundError:
                return None

    def _existing(self, tenant: str, kind: str, ids: Iterable[str]) -> set[str]:
        by_bucket: dict[str, list[str]] = defaultdict(list)
        for key in dict.fromkeys(ids):
            by_bucket[_bucket(key)].append(key)
        found: set[str] = set()
        with self._calls("read"):
            for bucket, keys in by_bucket.items():
                for start in range(0, len(keys), _ROW_KEYS_PER_QUERY):
                    chunk = keys[start : start + _ROW_KEYS_PER_QUERY]
                    parameters: dict[str, Any] = {"pk": self._pk(tenant, kind, bucket)}
                    parameters.update({f"r{index}": _escape(key) for index, key in enumerate(chunk)})
                    rows = " or ".join(f"RowKey eq @r{index}" for index in range(len(chunk)))
                    # Spaces inside the parentheses: the SDK substitutes an @name only between spaces.
                    query = self._table.query_entities(
                        f"PartitionKey eq @pk and ( {rows} )", parameters=parameters, select=["RowKey"]
                    )
                    found.update(unquote(entity["RowKey"]) for entity in query)
        return found

    def _upsert_many(self, tenant: str, kind: str, keys: Iterable[str], properties: Mapping[str, Any]) -> None:
        by_bucket: dict[str, list[str]] = defaultdict(list)
        for key in dict.fromkeys(keys):
            by_bucket[_bucket(key)].append(key)
        with self._calls("write"):
            for bucket, bucket_keys in by_bucket.items():
                partition = self._pk(tenant, kind, bucket)
                for start in range(0, len(bucket_keys), _BATCH):
                    operations: list[Any] = [
                        (
                            "upsert",
                            {"PartitionKey": partition, "RowKey": _escape(key), **properties},
                            {"mode": "replace"},
                        )
                        for key in bucket_keys[start : start + _BATCH]
                    ]
                    self._table.submit_transaction(operations)

    def _delete(self, partition: str, row: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._calls("write"), contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(partition, _escape(row))

    def _merge(self, partition: str, row: str, properties: Mapping[str, Any]) -> None:
        from azure.data.tables import UpdateMode

        with self._calls("write"):
            entity = {"PartitionKey": partition, "RowKey": _escape(row), **properties}
            self._table.upsert_entity(entity, mode=UpdateMode.MERGE)

    def _replace(self, partition: str, row: str, properties: Mapping[str, Any]) -> None:
        from azure.data.tables import UpdateMode

        with self._calls("write"):
            entity = {"PartitionKey": partition, "RowKey": _escape(row), **properties}
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def _insert(self, partition: str, row: str, properties: Mapping[str, Any]) -> bool:
        """Create the entity; False when it exists (atomic: of two writers exactly one gets True)."""
        with self._calls("write"):
            try:
                self._table.create_entity({"PartitionKey": partition, "RowKey": _escape(row), **properties})
            except _exists_error():
                return False
            return True

    def _content_type(self, tenant: str, content_type: str, field: str) -> datetime | None:
        entity = self._get(self._pk(tenant, "ct"), content_type)
        value = entity.get(field) if entity else None
        return decode_time(value) if value else None

    # -- per content type

    def checkpoint(self, tenant: str, content_type: str) -> datetime | None:
        return self._content_type(tenant, content_type, "listed_until")

    def set_checkpoint(self, tenant: str, content_type: str, listed_until: datetime) -> None:
        check_key("content type", content_type)
        self._merge(self._pk(tenant, "ct"), content_type, {"listed_until": encode_time(listed_until)})

    def subscription_started(self, tenant: str, content_type: str) -> datetime | None:
        return self._content_type(tenant, content_type, "subscription_started")

    def set_subscription_started(self, tenant: str, content_type: str, started: datetime) -> None:
        check_key("content type", content_type)
        self._merge(self._pk(tenant, "ct"), content_type, {"subscription_started": encode_time(started)})

    # -- content blobs and records

    def known_content(self, tenant: str, content_ids: Iterable[str]) -> set[str]:
        return self._existing(tenant, "content", content_ids)

    def known_records(self, tenant: str, record_ids: Iterable[str]) -> set[str]:
        return self._existing(tenant, "rec", record_ids)

    def mark_processed(self, tenant: str, content_id: str, record_ids: Iterable[str], seen: datetime) -> None:
        check_key("content id", content_id)
        when = encode_time(seen)
        records = [check_key("record id", record_id) for record_id in record_ids]
        # Records first, then the blob: a crash in between re-reads the blob and finds its records known.
        self._upsert_many(tenant, "rec", records, {"seen": when})
        self._upsert_many(tenant, "content", [content_id], {"seen": when})
        self._delete(self._pk(tenant, "failed"), content_id)

    # -- failures and gaps

    def failures(self, tenant: str) -> list[FailedBlob]:
        with self._calls("read"):
            rows = list(
                self._table.query_entities("PartitionKey eq @pk", parameters={"pk": self._pk(tenant, "failed")})
            )
        found = [_failed(unquote(row["RowKey"]), row) for row in rows]
        return sorted(found, key=lambda failed: (failed.created, failed.content_id))

    def record_failure(
        self, tenant: str, content_type: str, content_id: str, created: datetime, error: str, at: datetime
    ) -> FailedBlob:
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        check_key("content id", content_id)
        partition, when, text = self._pk(tenant, "failed"), encode_time(at), error_text(error)
        for round_ in range(_FAILURE_RETRIES):
            if round_:  # someone else wrote it between our read and our write: wait a little, read again
                time.sleep(random.uniform(0, 0.1))  # noqa: S311 - jitter, not a secret
            with self._calls("read"):
                try:
                    current = self._table.get_entity(partition, _escape(content_id))
                except ResourceNotFoundError:
                    current = None
            if current is None:
                entity: dict[str, Any] = {
                    "content_type": content_type,
                    "created": encode_time(created),
                    "attempts": 1,
                    "last_error": text,
                    "first_failed": when,
                    "last_failed": when,
                }
                if self._insert(partition, content_id, entity):
                    return _failed(content_id, entity)
                continue  # another writer created it meanwhile: count on top of theirs
            updated = {
                **current,
                "attempts": int(current.get("attempts", 0)) + 1,
                "last_error": text,
                "last_failed": when,
            }
            try:
                self._table.update_entity(
                    updated,
                    mode=UpdateMode.REPLACE,
                    etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:  # a concurrent writer counted too: read again and count on top
                continue
            except AzureError as exc:
                raise StateError(
                    f"cannot write the watch state (table {self._table.table_name}): {_reason(exc)}"
                ) from None
            return _failed(content_id, updated)
        raise StateError(f"cannot record the failure of blob {content_id}: the entry kept changing under us")

    def clear_failure(self, tenant: str, content_id: str) -> None:
        self._delete(self._pk(tenant, "failed"), content_id)

    def add_gap(self, tenant: str, gap: Gap) -> bool:
        properties: dict[str, Any] = {
            "content_type": gap.content_type,
            "reason": gap.reason,
            "start": encode_time(gap.start),
            "end": encode_time(gap.end),
            "detail": error_text(gap.detail),
            "recorded": encode_time(gap.recorded),
        }
        if gap.content_id is not None:
            properties["content_id"] = gap.content_id
        return self._insert(self._pk(tenant, "gap"), gap.key, properties)

    def gaps(self, tenant: str, since: datetime) -> list[Gap]:
        with self._calls("read"):
            rows = list(
                self._table.query_entities(
                    "PartitionKey eq @pk and recorded ge @since",
                    parameters={"pk": self._pk(tenant, "gap"), "since": encode_time(since)},
                )
            )
        rows.sort(key=lambda row: (row["recorded"], unquote(row["RowKey"])))
        return [
            Gap(
                content_type=row["content_type"],
                reason=_gap_reason(row["reason"]),
                start=decode_time(row["start"]),
                end=decode_time(row["end"]),
                detail=row["detail"],
                recorded=decode_time(row["recorded"]),
                content_id=row.get("content_id"),
            )
            for row in rows
        ]

    # -- detections

    def baseline(self, tenant: str, user_key: str) -> dict[str, Any] | None:
        entity = self._get(self._pk(tenant, "baseline"), user_key)
        return dict(json.loads(entity["document"])) if entity else None

    def put_baseline(self, tenant: str, user_key: str, document: Mapping[str, Any]) -> None:
        check_key("user key", user_key)
        self._replace(self._pk(tenant, "baseline"), user_key, {"document": baseline_json(document)})

    def put_baselines(self, tenant: str, documents: Mapping[str, Mapping[str, Any]]) -> None:
        texts = baseline_texts(documents)
        partition = self._pk(tenant, "baseline")
        keys = list(texts)
        with self._calls("write"):
            start = 0
            while start < len(keys):
                # One entity group transaction per chunk: at most 100 entities and well under its 4 MiB payload.
                operations: list[Any] = []
                size = 0
                while start < len(keys) and len(operations) < _BATCH and size < _BATCH_BYTES:
                    key = keys[start]
                    entity = {"PartitionKey": partition, "RowKey": _escape(key), "document": texts[key]}
                    operations.append(("upsert", entity, {"mode": "replace"}))
                    size += 2 * len(texts[key]) + 512  # a Table string is UTF-16; keys and envelope on top
                    start += 1
                self._table.submit_transaction(operations)

    def claim_alerts(self, tenant: str, alert_ids: Iterable[str], at: datetime) -> set[str]:
        when, claimed = encode_time(at), set()
        for alert_id in dict.fromkeys(alert_ids):
            check_key("alert id", alert_id)
            if self._insert(self._pk(tenant, "alert", _bucket(alert_id)), alert_id, {"reported": when}):
                claimed.add(alert_id)
        return claimed

    # -- key/value area

    def value(self, tenant: str, key: str) -> str | None:
        entity = self._get(self._pk(tenant, "kv"), key)
        return str(entity["value"]) if entity else None

    def put_value(self, tenant: str, key: str, value: str) -> None:
        check_key("key", key)
        self._replace(self._pk(tenant, "kv"), key, {"value": check_value(value)})

    def delete_value(self, tenant: str, key: str) -> None:
        self._delete(self._pk(tenant, "kv"), key)

    def values(self, tenant: str, prefix: str = "") -> dict[str, str]:
        found: dict[str, str] = {}
        escaped = _escape(prefix)
        with self._calls("read"):
            query = self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @prefix",
                parameters={"pk": self._pk(tenant, "kv"), "prefix": escaped},
            )
            # Row keys come sorted, and percent-encoding keeps prefixes: the matches are one run from the prefix on.
            for entity in query:
                if not entity["RowKey"].startswith(escaped):
                    break
                found[unquote(entity["RowKey"])] = str(entity["value"])
        return dict(sorted(found.items()))

    # -- housekeeping

    def prune(self, tenant: str, *, seen_before: datetime, alerts_before: datetime) -> int:
        removed = 0
        for kind, field, cutoff in (
            ("rec", "seen", seen_before),
            ("content", "seen", seen_before),
            ("alert", "reported", alerts_before),
        ):
            low = self._pk(tenant, kind, "")
            with self._calls("read"):
                old = [
                    (row["PartitionKey"], row["RowKey"])
                    for row in self._table.query_entities(
                        f"PartitionKey ge @low and PartitionKey lt @high and {field} lt @cutoff",
                        parameters={"low": low, "high": low[:-1] + "}", "cutoff": encode_time(cutoff)},
                        select=["PartitionKey", "RowKey"],
                    )
                ]
            by_partition: dict[str, list[str]] = defaultdict(list)
            for partition, row in old:
                by_partition[partition].append(row)
            with self._calls("write"):
                for partition, rows in by_partition.items():
                    for start in range(0, len(rows), _BATCH):
                        operations: list[Any] = [
                            ("delete", {"PartitionKey": partition, "RowKey": row})
                            for row in rows[start : start + _BATCH]
                        ]
                        self._table.submit_transaction(operations)
            removed += len(old)
        return removed

    def close(self) -> None:
        self._table.close()


def table_client(storage: StorageSettings, table_name: str, *, retry_total: int = 3) -> TableClient:
    """The table in the function app's storage account: the connection string, else the identity-based endpoint."""
    from azure.data.tables import TableClient

    options: dict[str, Any] = {
        "retry_total": retry_total,
        "initial_backoff": 1,
        "increment_base": 2,
        "connection_timeout": 10,
        "read_timeout": 30,
    }
    if not storage.configured:
        raise StateError("no storage account is configured (AzureWebJobsStorage) for the watch state")
    if storage.connection_string:
        try:
            return TableClient.from_connection_string(storage.connection_string, table_name, **options)
        except ValueError:
            raise StateError("AzureWebJobsStorage is not a usable storage connection string for tables") from None
    url = storage.table_url
    if url is None:
        raise StateError(
            "AzureWebJobsStorage__tableServiceUri must be set for the watch state when the blob endpoint is given "
            "as __blobServiceUri (another cloud's table endpoint cannot be guessed)"
        )
    from azure.identity import ManagedIdentityCredential

    credential = (
        ManagedIdentityCredential(client_id=storage.client_id) if storage.client_id else ManagedIdentityCredential()
    )
    return TableClient(url, table_name, credential=credential, **options)


def _exists_error() -> type[Exception]:
    from azure.core.exceptions import ResourceExistsError

    return ResourceExistsError


def _gap_reason(text: str) -> GapReason:
    if text == "expired-before-read":
        return "expired-before-read"
    if text == "unreadable":
        return "unreadable"
    return "outage-beyond-retention"


def _failed(content_id: str, row: Mapping[str, Any]) -> FailedBlob:
    return FailedBlob(
        content_type=str(row["content_type"]),
        content_id=content_id,
        created=decode_time(row["created"]),
        attempts=int(row["attempts"]),
        last_error=str(row["last_error"]),
        first_failed=decode_time(row["first_failed"]),
        last_failed=decode_time(row["last_failed"]),
    )


def _conforms(store: TableStateStore) -> StateStore:
    """Never called: mypy checks here that the backend implements the whole interface, exactly."""
    return store


def _reason(exc: Exception) -> str:
    return storage_reason(exc, role="the Storage Table Data Contributor role")
