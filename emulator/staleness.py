"""Stale reads after a write (fault `stale_reads`): the next N reads of the written object's Get- cmdlet answer
the state from before the write, or the 404 not-found envelope, as Exchange Online's replicas can for minutes.

Self-contained: `ExchangeApi` asks `snapshot_needed` before a write, `arm` after it succeeded, and `serve` before
each read. Snapshots are deep copies of the tenant (test tenants are small); callers hold `Emulator.lock`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .faults import FaultSet

if TYPE_CHECKING:
    from .tenant import TenantState

KIND = "stale_reads"
# The cmdlet whose answer a write makes stale.
READ_OF = {
    "Set-OrganizationConfig": "Get-OrganizationConfig",
    "Enable-OrganizationCustomization": "Get-OrganizationConfig",
    "Set-AdminAuditLogConfig": "Get-AdminAuditLogConfig",
    "Set-Mailbox": "Get-Mailbox",
    "Set-MailboxAuditBypassAssociation": "Get-MailboxAuditBypassAssociation",
}


@dataclass
class _Window:
    tenant: TenantState  # the state before the first write of this window
    reads: int  # stale answers still to give
    not_found: bool


class StaleReads:
    def __init__(self, faults: FaultSet) -> None:
        self.faults = faults
        self._windows: dict[str, _Window] = {}

    def snapshot_needed(self, cmdlet: str) -> bool:
        return cmdlet in READ_OF and self.faults.has(KIND)

    def arm(self, cmdlet: str, before: TenantState, path: str) -> None:
        """After a successful write: a matching fault (its `cmdlet` is the write) makes the next reads stale."""
        fault = self.faults.fire({KIND}, listener="exchange", cmdlet=cmdlet, page=1, path=path)
        if fault is None:
            return
        read = READ_OF[cmdlet]
        window = self._windows.get(read)
        reads, not_found = int(fault.options.get("reads", 1)), bool(fault.options.get("not_found", False))
        if window is not None and window.reads > 0:  # still stale: keep the older state, restart the count
            window.reads, window.not_found = reads, not_found
        else:
            self._windows[read] = _Window(before, reads, not_found)

    def serve(self, cmdlet: str) -> _Window | None:
        """For a read (first page): the stale window it falls in, counted, or None to answer normally."""
        window = self._windows.get(cmdlet)
        if window is None or window.reads <= 0:
            return None
        window.reads -= 1
        return window

    @staticmethod
    def snapshot(tenant: TenantState) -> TenantState:
        return copy.deepcopy(tenant)
