"""Every control, in one place and in report order. Adding a control: docs/adding-a-control.md."""

from __future__ import annotations

from shared.controls import (
    audit_bypass,
    audit_log_search,
    audit_pipeline,
    audit_retention_policy,
    mailbox_audit_actions,
    mailbox_audit_retention,
    org_audit_enabled,
)
from shared.controls.base import Control
from shared.model import ControlResult

CONTROLS: tuple[Control, ...] = (
    org_audit_enabled.CONTROL,
    audit_log_search.CONTROL,
    audit_bypass.CONTROL,
    mailbox_audit_actions.CONTROL,
    mailbox_audit_retention.CONTROL,
    audit_retention_policy.CONTROL,
    audit_pipeline.CONTROL,
)

BY_ID: dict[str, Control] = {control.id: control for control in CONTROLS}
IMPLEMENTED_CONTROLS: tuple[str, ...] = tuple(BY_ID)
REVERTIBLE_CONTROLS: tuple[str, ...] = tuple(control.id for control in CONTROLS if control.plan_revert)
UNATTENDED_CONTROLS: tuple[str, ...] = tuple(
    control.id for control in CONTROLS if control.safe_unattended and control.remediable
)
OPT_IN_CONTROLS: tuple[str, ...] = tuple(control.id for control in CONTROLS if control.not_run)
NOT_REMEDIABLE: tuple[str, ...] = tuple(control.id for control in CONTROLS if not control.remediable)
CANARY_CONTROL = "audit-pipeline"  # runs only where AUDIT_CANARY_MAILBOX names a canary mailbox


def error_result(control_id: str, reason: str) -> ControlResult:
    """Fail closed: a control whose value could not be read is an Error, never Compliant."""
    return BY_ID[control_id].error(reason)
