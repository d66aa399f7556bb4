"""grant-permissions --exchange-roles, the pure part: which role group, which roles, which member, what is missing.

Least privilege through Exchange RBAC (permissions.md §1, §3): the app gets a pointer in Exchange
(`New-ServicePrincipal`) and membership of one custom role group per use, instead of the Entra role Exchange
Administrator (which holds Role Management) or Global Reader (which reads all of Microsoft 365). The groups are a
data table (`ROLE_GROUPS`), keyed by endpoint and use: the Security & Compliance side (the Purview role
Organization Configuration for the opt-in retention-policy control, with its own `New-ServicePrincipal`) is one
more row, granted only with `--retention-policy`.

No I/O here: shared/graph/role_groups.py reads the endpoint, calls `plan_role_groups` and sends the missing steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.exchange.roles import (
    AUDIT_LOGS,
    MAIL_RECIPIENTS,
    ORGANIZATION_CONFIGURATION,
    VIEW_ONLY_CONFIGURATION,
    VIEW_ONLY_RECIPIENTS,
)

EXCHANGE = "exchange"  # the Exchange Online admin endpoint
COMPLIANCE = "compliance"  # the Security & Compliance (IPPS) admin endpoint: audit retention policies
CUSTOMISATION_NOTE = (
    "The tenant was dehydrated: Enable-OrganizationCustomization ran first. Microsoft says the change can take "
    "up to a few hours to apply; until then Exchange may refuse the role group (run this command again later) "
    "and the new roles may not reach the app yet."
)


RETENTION_ROLE_GROUP_WARNING = (
    "The Purview role Organization Configuration (for audit-retention-policy) can also create, change and delete "
    "audit retention policies: Purview offers no read-only role that reads them. Grant it only "
    "if you run that check (AUDIT_RETENTION_POLICY_CHECK=true)."
)


class Use(StrEnum):
    CHECK = "check"
    REMEDIATE = "remediate"


@dataclass(frozen=True)
class Endpoint:
    """An admin endpoint with its own RBAC: its name in messages and whether a dehydrated tenant must be
    customised there first (Exchange only; Security & Compliance has no Enable-OrganizationCustomization step)."""

    name: str
    title: str
    customisation: bool


ENDPOINTS = {
    EXCHANGE: Endpoint(EXCHANGE, "Exchange Online", customisation=True),
    COMPLIANCE: Endpoint(COMPLIANCE, "Security & Compliance", customisation=False),
}


@dataclass(frozen=True)
class RoleGroupSpec:
    """One custom role group the app is made a member of."""

    endpoint: str
    use: Use | None  # None: every use (a group that serves checks and remediation alike)
    name: str
    roles: tuple[str, ...]
    description: str


# The role groups per endpoint and use (permissions.md §3). Mail Recipients joins "remediate" only when the
# configured canary write needs it (`canary_needs_mail_recipients`). Reading retention policies already needs the
# Purview role that writes them (no read-only role works, permissions.md §2), so one group serves both uses there.
ROLE_GROUPS: tuple[RoleGroupSpec, ...] = (
    RoleGroupSpec(
        EXCHANGE,
        Use.CHECK,
        "Mailbox Audit Guard (check)",
        (VIEW_ONLY_CONFIGURATION, VIEW_ONLY_RECIPIENTS),
        "Mailbox Audit Guard: read the audit configuration (check only).",
    ),
    RoleGroupSpec(
        EXCHANGE,
        Use.REMEDIATE,
        "Mailbox Audit Guard (remediate)",
        (VIEW_ONLY_CONFIGURATION, VIEW_ONLY_RECIPIENTS, AUDIT_LOGS, ORGANIZATION_CONFIGURATION),
        "Mailbox Audit Guard: read and remediate the audit configuration.",
    ),
    RoleGroupSpec(
        COMPLIANCE,
        None,
        "Mailbox Audit Guard (retention policies)",
        (ORGANIZATION_CONFIGURATION,),
        "Mailbox Audit Guard: read and fix the Purview audit retention policies (audit-retention-policy).",
    ),
)


def role_group(endpoint: str, use: Use, *, canary_needs_mail_recipients: bool = False) -> RoleGroupSpec:
    """The group for this endpoint and use; Exchange remediation adds Mail Recipients only for a custom-attribute
    canary."""
    spec = next(g for g in ROLE_GROUPS if g.endpoint == endpoint and g.use in (use, None))
    if spec.use is Use.REMEDIATE and canary_needs_mail_recipients and MAIL_RECIPIENTS not in spec.roles:
        return RoleGroupSpec(spec.endpoint, spec.use, spec.name, (*spec.roles, MAIL_RECIPIENTS), spec.description)
    return spec


def other_groups(spec: RoleGroupSpec) -> tuple[RoleGroupSpec, ...]:
    """The same endpoint's groups for the other uses (membership there is reported, never changed)."""
    return tuple(g for g in ROLE_GROUPS if g.endpoint == spec.endpoint and g.use not in (spec.use, None))


# ---- what Exchange holds now --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    """The app (or managed identity) in Entra: what `New-ServicePrincipal` points at."""

    app_id: str
    object_id: str
    display_name: str


@dataclass(frozen=True)
class GroupState:
    """An existing role group: its roles and the identities of its members (as Get-RoleGroupMember lists them)."""

    roles: tuple[str, ...]
    members: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ExchangeState:
    """What the grant read: the organization's hydration (always False where there is no customisation step), the
    app's pointer (None: absent), the groups by name."""

    dehydrated: bool
    service_principal: Mapping[str, Any] | None
    groups: Mapping[str, GroupState | None]


# Identifiers only (Identity as the app's pointer names it): a display Name can be shared by another member, which
# must not count as the app.
MEMBER_KEYS = ("ObjectId", "ExternalDirectoryObjectId", "Identity", "AppId", "Guid")


def _ids(row: Mapping[str, Any]) -> set[str]:
    return {str(row.get(key) or "").lower() for key in MEMBER_KEYS} - {""}


def is_member(group: GroupState, app: App, pointer: Mapping[str, Any] | None) -> bool:
    """Whether one of the group's members is the app (by object id, app id or the pointer's identities)."""
    mine = {app.object_id.lower(), app.app_id.lower()} | (_ids(pointer) if pointer else set())
    return any(_ids(member) & mine for member in group.members)


def _same_role(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


# ---- the plan ----------------------------------------------------------------------------------------------------


class Outcome(StrEnum):
    DONE = "Done"  # sent now and accepted
    ALREADY = "AlreadyInPlace"  # found in place: nothing sent
    PLANNED = "Planned"  # --dry-run: would be sent
    DEFERRED = "Deferred"  # refused while the tenant's customisation propagates; run again later
    FAILED = "Failed"


@dataclass(frozen=True)
class RoleStep:
    """One change in Exchange: the cmdlet and parameters to send, and whether it is already in place."""

    label: str
    cmdlet: str
    parameters: dict[str, Any]
    present: bool


@dataclass(frozen=True)
class RoleGroupPlan:
    group: RoleGroupSpec
    steps: tuple[RoleStep, ...]
    notes: tuple[str, ...] = ()

    @property
    def missing(self) -> tuple[RoleStep, ...]:
        return tuple(step for step in self.steps if not step.present)


def plan_role_groups(
    app: App,
    state: ExchangeState,
    use: Use,
    *,
    endpoint: str = EXCHANGE,
    canary_needs_mail_recipients: bool = False,
) -> RoleGroupPlan:
    """The steps, in order, that give the app the role group for `use` on `endpoint`; a second run finds each
    present."""
    spec = role_group(endpoint, use, canary_needs_mail_recipients=canary_needs_mail_recipients)
    pointer = state.service_principal
    member = str((pointer or {}).get("Identity") or (pointer or {}).get("ObjectId") or app.object_id)
    steps = []
    if ENDPOINTS[endpoint].customisation:
        steps.append(
            RoleStep(
                "organization customisation (Enable-OrganizationCustomization)",
                "Enable-OrganizationCustomization",
                {},
                not state.dehydrated,
            )
        )
    steps.append(
        RoleStep(
            f"service principal pointer for app {app.app_id} (New-ServicePrincipal)",
            "New-ServicePrincipal",
            {"AppId": app.app_id, "ObjectId": app.object_id, "DisplayName": app.display_name or app.app_id},
            pointer is not None,
        )
    )
    notes = [CUSTOMISATION_NOTE] if state.dehydrated and ENDPOINTS[endpoint].customisation else []
    if endpoint == COMPLIANCE:
        notes.append(RETENTION_ROLE_GROUP_WARNING)
    group = state.groups.get(spec.name)
    if group is None:
        steps.append(
            RoleStep(
                f'role group "{spec.name}" with {", ".join(spec.roles)}, the app as member (New-RoleGroup)',
                "New-RoleGroup",
                {"Name": spec.name, "Roles": list(spec.roles), "Members": [member], "Description": spec.description},
                False,
            )
        )
    else:
        steps.append(RoleStep(f'role group "{spec.name}"', "New-RoleGroup", {"Name": spec.name}, True))
        for role in spec.roles:
            steps.append(
                RoleStep(
                    f'role {role} in "{spec.name}" (New-ManagementRoleAssignment)',
                    "New-ManagementRoleAssignment",
                    {"Role": role, "SecurityGroup": spec.name},
                    any(_same_role(role, held) for held in group.roles),
                )
            )
        steps.append(
            RoleStep(
                f'the app as member of "{spec.name}" (Add-RoleGroupMember)',
                "Add-RoleGroupMember",
                {"Identity": spec.name, "Member": member},
                is_member(group, app, pointer),
            )
        )
        extra = [r for r in group.roles if not any(_same_role(r, w) for w in spec.roles)]
        if extra:
            purpose = spec.use or "audit-retention-policy"
            notes.append(
                f'"{spec.name}" also holds {", ".join(extra)}, more than {purpose} needs; remove it '
                f"(Remove-ManagementRoleAssignment) unless something else uses it (least privilege)."
            )
    if spec.use is Use.REMEDIATE and not canary_needs_mail_recipients:
        notes.append(
            "Mail Recipients is not included: the configured canary write does not need it (a custom-attribute "
            "canary would, and that role is broad)."
        )
    for other in other_groups(spec):
        found = state.groups.get(other.name)
        if found is not None and is_member(found, app, pointer):
            notes.append(
                f'The app is also a member of "{other.name}"; remove it there (Remove-RoleGroupMember) if it '
                f"should only {use}."
            )
    return RoleGroupPlan(spec, tuple(steps), tuple(notes))


# ---- what a run found and did --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    step: RoleStep
    outcome: Outcome
    message: str


@dataclass
class RoleGroupReport:
    """What one endpoint's part of a run found and did; ok only when every step is in place (or planned)."""

    use: Use
    endpoint_url: str
    endpoint: str = EXCHANGE
    dry_run: bool = False
    group: RoleGroupSpec | None = None
    signed_in: str | None = None  # the administrator's UPN, as the token names it
    results: list[StepResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        good = {Outcome.DONE, Outcome.ALREADY, Outcome.PLANNED}
        return self.error is None and bool(self.results) and all(r.outcome in good for r in self.results)

    @property
    def changed_nothing(self) -> bool:
        return bool(self.results) and all(r.outcome is Outcome.ALREADY for r in self.results)
