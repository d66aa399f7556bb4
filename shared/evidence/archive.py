"""Archives a run's evidence (JSON, HTML, Markdown) in Azure Blob Storage, write-once.

Blobs: `{tenant_id}/{YYYY}/{MM}/{DD}/{run_id}.{json,html,md}` (date of `started_at`, UTC) in the container named by
`EVIDENCE_CONTAINER` (default `evidence`), created when missing. The storage account is the function app's own
(`AzureWebJobsStorage`): a connection string (Azurite, local development) or the identity-based settings the
Functions host uses (`__accountName` or `__blobServiceUri`, `__credential=managedidentity`, `__clientId`).

azure.storage.blob is imported on first use only, so a check that archives nothing does not pay for it. Errors are
`ArchiveError`s built from safe parts (status, error code, endpoint host): never a key, SAS token or connection string.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.config.declaration import Env
from shared.config.loader import (
    BAD_CONNECTION_STRING,
    CONTAINER_RULES,
    DEFAULT_CONTAINER,
    StorageSettings,
    container_problem,
    parse_storage,
)
from shared.evidence.html import render_html
from shared.evidence.markdown import render_markdown
from shared.storage_errors import storage_reason

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

PREFIX = "AzureWebJobsStorage"
CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
}
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ArchiveError(Exception):
    """The evidence could not be archived; the message says why, without secrets."""


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The evidence document as canonical JSON: sorted keys, no insignificant whitespace, UTF-8."""
    # A lone surrogate (Exchange strings are UTF-16) cannot be UTF-8: keep it visible as an escape, never fail.
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8", errors="backslashreplace"
    )


def blob_prefix(document: Mapping[str, Any]) -> str:
    """`{tenant_id}/{YYYY}/{MM}/{DD}/{run_id}`, from the document; ArchiveError when a part is unusable."""
    tenant_id, run_id = document.get("tenant_id"), document.get("run_id")
    for name, value in (("tenant_id", tenant_id), ("run_id", run_id)):
        if not isinstance(value, str) or not _SEGMENT.match(value) or ".." in value:
            raise ArchiveError(f"cannot archive: the document's {name} is missing or not a safe blob path segment")
    try:
        started = datetime.fromisoformat(str(document.get("started_at")))
    except ValueError:
        raise ArchiveError("cannot archive: the document's started_at is not an ISO 8601 timestamp") from None
    if started.tzinfo is None:
        raise ArchiveError("cannot archive: the document's started_at has no time zone")
    return f"{tenant_id}/{started.astimezone(UTC):%Y/%m/%d}/{run_id}"


def archive_evidence(document: dict[str, Any], *, container: str, blob_service: BlobServiceClient) -> list[str]:
    """Upload the run's JSON, HTML and Markdown evidence; return the blob names written (in that order).

    Write-once: an existing blob is never replaced, so archiving the same run twice raises ArchiveError.
    """
    from azure.core.exceptions import AzureError, ResourceExistsError

    check_container_name(container)
    prefix = blob_prefix(document)
    try:
        evidence = canonical_json(document)
    except (TypeError, ValueError) as exc:
        raise ArchiveError(f"cannot archive: the document is not plain JSON ({type(exc).__name__})") from None
    payloads = {
        "json": evidence,
        "html": render_html(document).encode("utf-8", errors="backslashreplace"),
        "md": render_markdown(document).encode("utf-8", errors="backslashreplace"),
    }
    where = _endpoint(blob_service)
    container_client = blob_service.get_container_client(container)
    written: list[str] = []
    for extension, data in payloads.items():
        name = f"{prefix}.{extension}"
        metadata = {
            "run_id": str(document["run_id"]),
            "tenant_id": str(document["tenant_id"]),
            "status": _ascii(document.get("status")),
            "schema_version": _ascii(document.get("schema_version")),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        try:
            _put(container_client, name, data, CONTENT_TYPES[extension], metadata)
        except ResourceExistsError:
            raise ArchiveError(
                f"evidence blob {container}/{name} already exists at {where}: evidence is write-once, "
                f"so run {document['run_id']} was archived before and is left as it was"
                + (f" (this attempt wrote {', '.join(written)} first)" if written else "")
            ) from None
        except (AzureError, ValueError) as exc:
            raise ArchiveError(f"could not write evidence blob {container}/{name} at {where}: {_reason(exc)}") from None
        written.append(name)
    return written


def _put(container_client: Any, name: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
    """Upload one blob unless it exists (If-None-Match: *); create the container on first use."""
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
    from azure.storage.blob import ContentSettings

    def send() -> None:
        container_client.upload_blob(
            name, data, overwrite=False, metadata=metadata, content_settings=ContentSettings(content_type=content_type)
        )

    try:
        send()
    except ResourceNotFoundError as exc:
        if getattr(exc, "error_code", None) != "ContainerNotFound":
            raise
        with contextlib.suppress(ResourceExistsError):  # created meanwhile by another run: fine
            container_client.create_container()
        send()


def check_container_name(name: str) -> str:
    """Azure's container naming rules: 3-63 lowercase letters, digits and single hyphens."""
    if not isinstance(name, str) or container_problem(name) is not None:
        raise ArchiveError(f"EVIDENCE_CONTAINER {name!r} is not a valid container name ({CONTAINER_RULES})")
    return name


def storage_from_env(env: Mapping[str, str]) -> StorageSettings:
    """The storage settings alone (the loader reads them with all the others); ArchiveError names a bad one."""
    problems: dict[str, str] = {}
    storage = parse_storage(Env(env), problems)
    if problems:
        name, problem = next(iter(problems.items()))
        raise ArchiveError(f"{name} {problem}")
    return storage


def container_from_env(env: Mapping[str, str]) -> str:
    """`EVIDENCE_CONTAINER`, default `evidence`, checked against the naming rules."""
    return check_container_name(Env(env).get("EVIDENCE_CONTAINER") or DEFAULT_CONTAINER)


def blob_service_from_env(env: Mapping[str, str], *, retry_total: int = 3) -> BlobServiceClient | None:
    """`blob_service` for the storage settings in `env`."""
    return blob_service(storage_from_env(env), retry_total=retry_total)


def blob_service(storage: StorageSettings, *, retry_total: int = 3) -> BlobServiceClient | None:
    """The blob client for the function app's storage account, or None when no storage is configured.

    `AzureWebJobsStorage` holds a connection string (e.g. Azurite's, or `UseDevelopmentStorage=true`); otherwise
    `AzureWebJobsStorage__blobServiceUri` or `__accountName` with `__credential=managedidentity` (optionally
    `__clientId` for a user-assigned identity). `__accountName` means the public cloud's blob.core.windows.net;
    sovereign clouds set `__blobServiceUri`. ArchiveError names the setting that is wrong, never its value.
    `retry_total` bounds the SDK's retries (1 s base backoff); tests pass 0.
    """
    if not storage.configured:
        return None
    from azure.storage.blob import BlobServiceClient

    options: dict[str, Any] = {
        "retry_total": retry_total,
        "initial_backoff": 1,
        "increment_base": 2,
        "connection_timeout": 10,
        "read_timeout": 30,
    }
    if storage.connection_string:
        try:
            return BlobServiceClient.from_connection_string(storage.connection_string, **options)
        except ValueError:  # a shape the loader's check let through but the SDK refuses
            raise ArchiveError(f"{PREFIX} {BAD_CONNECTION_STRING}") from None
    url = storage.blob_url
    assert url is not None  # configured, without a connection string
    from azure.identity import ManagedIdentityCredential

    credential = (
        ManagedIdentityCredential(client_id=storage.client_id) if storage.client_id else ManagedIdentityCredential()
    )
    return BlobServiceClient(url, credential=credential, **options)


def _endpoint(blob_service: Any) -> str:
    """The account endpoint as scheme://host[:port], without path or query (a SAS token lives in the query)."""
    try:
        parts = urlsplit(str(blob_service.url))
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    except (AttributeError, ValueError):
        return "the storage account"


def _ascii(value: Any) -> str:
    """A metadata value: printable ASCII only (it travels as an HTTP header)."""
    return "".join(char if " " <= char <= "~" else "?" for char in str(value))[:256]


def _reason(exc: Exception) -> str:
    return storage_reason(exc, role="a Storage Blob Data role")
