"""Pure building blocks of the controls' fix and revert plans (the writes are sent by `engine.apply`)."""

from __future__ import annotations

from typing import Any

from shared.model import Action

# Plans are pure and tenant-agnostic: this marker asks the applier for the tenant's audit-log anchor mailbox.
AUDIT_LOG_ANCHOR = "audit-log-anchor"
HASHTABLE = "#Exchange.GenericHashTable"


class PlanRefused(Exception):
    """A planner that sees the fix cannot be made safely (e.g. no free priority); nothing is written, and the
    message (for the administrator) says why."""


CUSTOMISE = Action("Enable-OrganizationCustomization", {}, "Enable-OrganizationCustomization (dehydrated tenant)")


def customise_first(is_dehydrated: Any) -> list[Action]:
    """A dehydrated tenant takes no organisation-wide write until it is customised."""
    return [CUSTOMISE] if is_dehydrated is True else []


def switch_plan(
    current: Any, wanted: bool, is_dehydrated: Any, cmdlet: str, parameter: str, anchor: str | None = None
) -> list[Action]:
    """Set one organisation-wide boolean; a dehydrated tenant needs customisation first. Nothing when already so."""
    if current is wanted:
        return []
    write = Action(cmdlet, {parameter: wanted}, f"{cmdlet} -{parameter} ${str(wanted).lower()}", anchor=anchor)
    return [*customise_first(is_dehydrated), write]


def describe(plan: list[Action]) -> str:
    """The plan in words; per-object plans are summarised rather than listed."""
    if not plan:
        return "none"
    if all(step.target for step in plan):
        kinds = sorted({step.description for step in plan})
        return f"{len(plan)} × " + "; ".join(kinds) if len(kinds) == 1 else f"{len(plan)} per-object writes"
    return "; ".join(step.description for step in plan)
