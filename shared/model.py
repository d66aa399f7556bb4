"""The results data model: verdicts, planned writes, remediation outcomes and the run report. Plain data, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared import __version__


class Status(StrEnum):
    """A control's verdict. Ordered by severity: Error above NonCompliant above Compliant."""

    COMPLIANT = "Compliant"
    NON_COMPLIANT = "NonCompliant"
    ERROR = "Error"

    @property
    def exit_code(self) -> int:
        """The original script's exit codes: 0 compliant, 1 non-compliant, 2 error."""
        return {Status.COMPLIANT: 0, Status.NON_COMPLIANT: 1, Status.ERROR: 2}[self]


def worst(statuses: list[Status]) -> Status:
    """The overall status of a run; an empty run proves nothing, so it is an Error."""
    if not statuses:
        return Status.ERROR
    return max(statuses, key=lambda s: s.exit_code)


class Outcome(StrEnum):
    """What a remediation did for one control."""

    APPLIED = "Applied"  # written, and the read-back shows the wanted state
    ALREADY_COMPLIANT = "AlreadyCompliant"  # already in the wanted state: nothing written
    DRY_RUN = "DryRun"  # planned only: nothing written
    FAILED = "Failed"  # not written, or written but the read-back disagrees (or could not be read)
    UNVERIFIED = "Unverified"  # written and accepted; the read-back did not show it within the verify window
    DEFERRED = "Deferred"  # not written yet: a dehydrated tenant's customisation is still propagating (up to 60 min)

    @property
    def done(self) -> bool:
        """The run reached the wanted state or had nothing to do; Unverified and Deferred are still pending."""
        return self in (Outcome.APPLIED, Outcome.ALREADY_COMPLIANT, Outcome.DRY_RUN)

    @property
    def pending(self) -> bool:
        """Neither done nor failed: the next run finds out (Unverified) or writes (Deferred)."""
        return self in (Outcome.UNVERIFIED, Outcome.DEFERRED)


@dataclass(frozen=True)
class ControlResult:
    """The verdict for one control in one tenant, with the evidence behind it."""

    control_id: str
    status: Status
    expected: str
    actual: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    """One cmdlet call a remediation plan wants to make."""

    cmdlet: str
    parameters: dict[str, Any]
    description: str
    anchor: str | None = None  # a special X-AnchorMailbox, when the cmdlet needs one
    target: str | None = None  # the mailbox or association a per-object write is for


@dataclass
class RemediationResult:
    """What happened to one control during `remediate` or `revert`."""

    control_id: str
    action: str  # the planned change in words, e.g. "Set-OrganizationConfig -AuditDisabled $false"
    outcome: Outcome
    before: ControlResult
    after: ControlResult | None
    message: str
    writes: list[str] = field(default_factory=list)  # cmdlets actually sent
    warnings: list[str] = field(default_factory=list)  # what Exchange said back
    details: dict[str, Any] = field(default_factory=dict)  # per-object results of per-object plans


@dataclass
class RunReport:
    """Everything one run found and did: the source of the CLI output, the evidence report and telemetry."""

    command: str
    tenant_id: str
    trigger: str = "cli"
    organization: str | None = None
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    dry_run: bool = False
    caller: str | None = None
    controls: list[ControlResult] = field(default_factory=list)
    remediation: list[RemediationResult] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)  # opt-in controls left out: control id -> why
    requests_sent: int = 0
    tool_version: str = __version__
    activity: dict[str, Any] | None = None  # the activity watch's health and recent alerts, when a state exists
    permission_model: str | None = None  # EXO_PERMISSION_MODEL: role-group or entra-role (None: settings refused)
    tenant_name: str | None = None  # the tenants register's name for the tenant (None: the single-tenant settings)

    @property
    def status(self) -> Status:
        return worst([result.status for result in self.controls])

    @property
    def failed_controls(self) -> list[str]:
        return [result.control_id for result in self.controls if result.status is not Status.COMPLIANT]
