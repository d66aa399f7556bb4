"""One writer per tenant: a thread lock within this instance, and a blob lease across instances.

Flex Consumption can run several instances of the app at once; two remediation requests for one tenant must not
both write. The lease lives in the app's own storage account (AzureWebJobsStorage), which the Functions host
needs anyway. Without a storage account only the in-process lock applies (local runs, the CLI).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("mailbox_audit_guard.lock")

LOCK_CONTAINER = "mailbox-audit-guard-locks"
LEASE_SECONDS = 60  # Azure allows 15-60 s (or infinite, which a crash would leave behind)
RENEW_EVERY_SECONDS = 20
POLL_SECONDS = 0.5

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


class TenantLockError(Exception):
    """The tenant's write lock could not be taken: nothing was written."""


class TenantWriteLock:
    """`with TenantWriteLock(tenant, blob_service, wait_seconds):` holds the tenant's write lock for the block."""

    def __init__(self, tenant_id: str, blob_service: Any | None, wait_seconds: float) -> None:
        self.tenant_id = tenant_id
        self.blob_service = blob_service
        self.wait_seconds = wait_seconds
        with _local_guard:
            self._local = _local_locks.setdefault(tenant_id, threading.Lock())
        self._lease: Any = None
        self._stop = threading.Event()
        self.lost = threading.Event()  # set when the lease could not be renewed: stop writing
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> TenantWriteLock:
        deadline = time.monotonic() + self.wait_seconds
        if not self._local.acquire(timeout=max(self.wait_seconds, 0)):
            raise TenantLockError(f"another remediation of tenant {self.tenant_id} is still running here")
        try:
            if self.blob_service is not None:
                self._lease = self._acquire_lease(deadline)
                self._renewer = threading.Thread(target=self._renew, name="tenant-lease-renewal", daemon=True)
                self._renewer.start()
        except BaseException:
            self._local.release()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        try:
            if self._lease is not None:
                self._lease.release()
        except Exception:  # the lease expires by itself within LEASE_SECONDS
            log.warning("Could not release the tenant lease; it expires within %d s", LEASE_SECONDS)
        finally:
            self._local.release()

    def _acquire_lease(self, deadline: float) -> Any:
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError

        assert self.blob_service is not None  # only called with a storage account
        blob = self.blob_service.get_blob_client(LOCK_CONTAINER, f"{self.tenant_id}.lock")
        try:
            with contextlib.suppress(ResourceExistsError):
                self.blob_service.create_container(LOCK_CONTAINER)
            with contextlib.suppress(ResourceExistsError):  # it exists, perhaps leased by another instance
                blob.upload_blob(b"", overwrite=False)
            while True:
                try:
                    return blob.acquire_lease(lease_duration=LEASE_SECONDS)
                except HttpResponseError as exc:
                    if exc.status_code != 409 or time.monotonic() >= deadline:
                        raise
                time.sleep(POLL_SECONDS)  # another instance holds it: wait for its release
        except AzureError as exc:
            reason = getattr(exc, "status_code", None) or type(exc).__name__
            raise TenantLockError(
                f"could not take the write lock for tenant {self.tenant_id} in the storage "
                f"account ({reason}); another remediation may still be running"
            ) from None

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY_SECONDS):
            try:
                self._lease.renew()
            except Exception:
                self.lost.set()
                log.warning("Renewing the tenant lease failed: no further writes in this run")
                return
