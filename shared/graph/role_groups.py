"""grant-permissions --exchange-roles against Exchange Online: read, plan, send only what is missing.

Signed in as an administrator (a delegated token through azure-identity), over the same `InvokeCommand` client
the app uses (shared/exchange/client.py: retries, redirects, the token kept to its host). A second run finds every
step in place and sends no change. The plan is shared/graph/role_groups_plan.py; nothing here prints.
"""

from __future__ import annotations

from typing import Any

from shared.exchange.client import ExchangeClient
from shared.exchange.errors import (
    ExchangeAuthError,
    ExchangeError,
    ExchangeNotFound,
    ExchangePermissionError,
    TenantDehydrated,
)
from shared.graph.grant_plan import GrantError
from shared.graph.role_groups_plan import (
    App,
    ExchangeState,
    GroupState,
    Outcome,
    RoleGroupReport,
    RoleStep,
    StepResult,
    Use,
    other_groups,
    plan_role_groups,
    role_group,
)

ADMIN_NEEDS = (
    "The signed-in account needs the Entra role Exchange Administrator (or Global Administrator), or membership "
    "of the Exchange role group Organization Management (it holds Role Management, which creates role groups); "
    "a Global Reader or an account without an Exchange role cannot."
)
ALREADY_TEXTS = ("already exists", "already a member", "is not required")


def _explain(what: str, exc: ExchangeError) -> str:
    if isinstance(exc, ExchangePermissionError):
        return f"Not allowed to {what} in Exchange Online (HTTP {exc.status}). {ADMIN_NEEDS} Nothing more was sent."
    if isinstance(exc, ExchangeAuthError):
        return (
            f"Exchange Online refused the sign-in token while trying to {what} ({exc.summary}). Sign in to the "
            "tenant as an Exchange Administrator (`az login --tenant <tenant id>`); a token for the app itself "
            "(client credentials) cannot manage role groups. Nothing more was sent."
        )
    return f"Could not {what} in Exchange Online: {exc}"


def _read(client: ExchangeClient, what: str, cmdlet: str, parameters: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The rows of a read; None for 404 (the object does not exist); GrantError for anything else."""
    try:
        return client.invoke(cmdlet, parameters).rows
    except ExchangeNotFound:
        return None
    except ExchangeError as exc:
        raise GrantError(_explain(what, exc)) from None


def read_state(client: ExchangeClient, app: App, use: Use, *, canary_needs_mail_recipients: bool) -> ExchangeState:
    """The organization's hydration, the app's pointer and the role groups of its endpoint (this use's and the
    others', to report membership there)."""
    org = _read(client, "read the organization configuration", "Get-OrganizationConfig", {}) or [{}]
    pointer_rows = _read(client, "read the service principals", "Get-ServicePrincipal", {"Identity": app.app_id})
    spec = role_group("exchange", use, canary_needs_mail_recipients=canary_needs_mail_recipients)
    groups: dict[str, GroupState | None] = {}
    for group in (spec, *other_groups(spec)):
        rows = _read(client, f'read the role group "{group.name}"', "Get-RoleGroup", {"Identity": group.name})
        if not rows:
            groups[group.name] = None
            continue
        members = _read(client, f'list the members of "{group.name}"', "Get-RoleGroupMember", {"Identity": group.name})
        roles = rows[0].get("Roles") or []
        groups[group.name] = GroupState(
            tuple(str(r) for r in (roles if isinstance(roles, list) else [roles])), tuple(members or ())
        )
    return ExchangeState(
        dehydrated=bool(org[0].get("IsDehydrated")),
        service_principal=pointer_rows[0] if pointer_rows else None,
        groups=groups,
    )


def grant_exchange_roles(
    client: ExchangeClient,
    app: App,
    use: Use,
    *,
    dry_run: bool = False,
    canary_needs_mail_recipients: bool = False,
    signed_in: str | None = None,
) -> RoleGroupReport:
    """Read, plan, send what is missing (nothing with `dry_run`). Never raises for Exchange trouble: see
    `report.error`. A step refused while a dehydrated tenant's customisation propagates is Deferred, as are the
    steps after it: the command says to run again later."""
    report = RoleGroupReport(use=use, endpoint_url=client.endpoint, dry_run=dry_run, signed_in=signed_in)
    try:
        state = read_state(client, app, use, canary_needs_mail_recipients=canary_needs_mail_recipients)
    except GrantError as exc:
        report.error = str(exc)
        return report
    plan = plan_role_groups(app, state, use, canary_needs_mail_recipients=canary_needs_mail_recipients)
    report.group = plan.group
    report.notes.extend(plan.notes)
    deferred = False
    for step in plan.steps:
        if step.present:
            report.results.append(StepResult(step, Outcome.ALREADY, "already in place"))
        elif dry_run:
            report.results.append(StepResult(step, Outcome.PLANNED, f"would run {step.cmdlet}"))
        elif deferred:
            report.results.append(StepResult(step, Outcome.DEFERRED, "waits for the customisation; run again later"))
        else:
            result = _send(client, step)
            deferred = result.outcome is Outcome.DEFERRED
            report.results.append(result)
            if result.outcome is Outcome.FAILED:
                report.error = result.message
                break
    if deferred:
        report.error = (
            "Exchange still refuses role groups while the organization's customisation propagates (it can take "
            "up to a few hours after Enable-OrganizationCustomization). Run this command again later; it sends "
            "only what is still missing."
        )
    return report


def _send(client: ExchangeClient, step: RoleStep) -> StepResult:
    try:
        client.invoke(step.cmdlet, step.parameters)
    except TenantDehydrated:
        return StepResult(step, Outcome.DEFERRED, "refused while the customisation propagates; run again later")
    except ExchangeError as exc:
        if any(text in str(exc).lower() for text in ALREADY_TEXTS):  # a concurrent run got there first
            return StepResult(step, Outcome.ALREADY, "already in place (by a concurrent change)")
        return StepResult(step, Outcome.FAILED, _explain(f"run {step.cmdlet}", exc))
    return StepResult(step, Outcome.DONE, "done")
