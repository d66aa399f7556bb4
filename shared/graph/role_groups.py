"""grant-permissions --exchange-roles against an admin endpoint: read, plan, send only what is missing.

Exchange Online, and with --retention-policy Security & Compliance too (its own pointer and role group). Signed in
as an administrator (a delegated token through azure-identity), over the same `InvokeCommand` client the app uses
(shared/exchange/client.py: retries, redirects, the token kept to its host). A second run finds every step in place
and sends no change. The plan is shared/graph/role_groups_plan.py; nothing here prints.
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
    COMPLIANCE,
    ENDPOINTS,
    EXCHANGE,
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

ADMIN_NEEDS = {
    EXCHANGE: "The signed-in account needs the Entra role Exchange Administrator (or Global Administrator), or "
    "membership of the Exchange role group Organization Management (it holds Role Management, which creates role "
    "groups); a Global Reader or an account without an Exchange role cannot.",
    COMPLIANCE: "The signed-in account needs the Entra role Global Administrator, or membership of the Purview role "
    "group Organization Management (it holds Role Management there); Exchange Administrator is not enough on "
    "this side.",
}
ALREADY_TEXTS = ("already exists", "already a member", "is not required")


def _explain(what: str, exc: ExchangeError, endpoint: str) -> str:
    title = ENDPOINTS[endpoint].title
    if isinstance(exc, ExchangePermissionError):
        return f"Not allowed to {what} in {title} (HTTP {exc.status}). {ADMIN_NEEDS[endpoint]} Nothing more was sent."
    if isinstance(exc, ExchangeAuthError):
        return (
            f"{title} refused the sign-in token while trying to {what} ({exc.summary}). Sign in to the tenant as "
            "an administrator (`az login --tenant <tenant id>`); a token for the app itself (client credentials) "
            "cannot manage role groups. Nothing more was sent."
        )
    return f"Could not {what} in {title}: {exc}"


def _read(
    client: ExchangeClient, what: str, cmdlet: str, parameters: dict[str, Any], endpoint: str
) -> list[dict[str, Any]] | None:
    """The rows of a read; None for 404 (the object does not exist); GrantError for anything else."""
    try:
        return client.invoke(cmdlet, parameters).rows
    except ExchangeNotFound:
        return None
    except ExchangeError as exc:
        raise GrantError(_explain(what, exc, endpoint)) from None


def read_state(
    client: ExchangeClient, app: App, use: Use, *, endpoint: str = EXCHANGE, canary_needs_mail_recipients: bool
) -> ExchangeState:
    """The organization's hydration (where it matters), the app's pointer and the role groups of the endpoint
    (this use's and the others', to report membership there)."""
    org: list[dict[str, Any]] = [{}]
    if ENDPOINTS[endpoint].customisation:
        org = _read(client, "read the organization configuration", "Get-OrganizationConfig", {}, endpoint) or [{}]
    pointer_rows = _read(
        client, "read the service principals", "Get-ServicePrincipal", {"Identity": app.app_id}, endpoint
    )
    spec = role_group(endpoint, use, canary_needs_mail_recipients=canary_needs_mail_recipients)
    groups: dict[str, GroupState | None] = {}
    for group in (spec, *other_groups(spec)):
        rows = _read(client, f'read the role group "{group.name}"', "Get-RoleGroup", {"Identity": group.name}, endpoint)
        if not rows:
            groups[group.name] = None
            continue
        members = _read(
            client, f'list the members of "{group.name}"', "Get-RoleGroupMember", {"Identity": group.name}, endpoint
        )
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
    endpoint: str = EXCHANGE,
    dry_run: bool = False,
    canary_needs_mail_recipients: bool = False,
    signed_in: str | None = None,
) -> RoleGroupReport:
    """Read, plan, send what is missing on `endpoint` (nothing with `dry_run`). Never raises for the endpoint's
    trouble: see `report.error`. A step refused while a dehydrated tenant's customisation propagates is Deferred,
    as are the steps after it: the command says to run again later."""
    report = RoleGroupReport(
        use=use, endpoint_url=client.endpoint, endpoint=endpoint, dry_run=dry_run, signed_in=signed_in
    )
    need = canary_needs_mail_recipients
    try:
        state = read_state(client, app, use, endpoint=endpoint, canary_needs_mail_recipients=need)
    except GrantError as exc:
        report.error = str(exc)
        return report
    plan = plan_role_groups(app, state, use, endpoint=endpoint, canary_needs_mail_recipients=need)
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
            result = _send(client, step, endpoint)
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


def _send(client: ExchangeClient, step: RoleStep, endpoint: str) -> StepResult:
    try:
        client.invoke(step.cmdlet, step.parameters)
    except TenantDehydrated:
        return StepResult(step, Outcome.DEFERRED, "refused while the customisation propagates; run again later")
    except ExchangeError as exc:
        if any(text in str(exc).lower() for text in ALREADY_TEXTS):  # a concurrent run got there first
            return StepResult(step, Outcome.ALREADY, "already in place (by a concurrent change)")
        return StepResult(step, Outcome.FAILED, _explain(f"run {step.cmdlet}", exc, endpoint))
    return StepResult(step, Outcome.DONE, "done")
