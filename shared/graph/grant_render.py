"""grant-permissions' output: the text for a terminal and the one JSON document of --json. Pure."""

from __future__ import annotations

from typing import Any

from shared import __version__
from shared.graph.grant_plan import GrantReport, Outcome, wanted_directory_role
from shared.graph.role_groups_plan import ENDPOINTS, RoleGroupReport
from shared.graph.role_groups_plan import Outcome as StepOutcome

LEAST_PRIVILEGE_HINT = (
    "Least privilege: an Exchange role group (`--exchange-roles check` or `--exchange-roles remediate`) can "
    "replace the directory-wide Entra role; see --help."
)
MODEL_HINT = "Set EXO_PERMISSION_MODEL=role-group on the app, so its evidence states the permission model."


_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def render_text(report: GrantReport) -> str:
    principal = report.principal
    who = (
        f"{principal.display_name or '(no name)'} ({principal.type or 'service principal'}, object id "
        f"{principal.id}, app id {principal.app_id})"
        if principal
        else report.requested_id
    )
    lines = [f"Granting Exchange Online and audit feed permissions to {who} via {report.graph_url}"]
    if report.tenant_id is not None:
        lines.insert(0, f"Customer tenant {report.tenant_id}: admin consent for the app, first: {report.consent_url}")
    # A failure's explanation goes to stderr (the CLI prints report.error); the line only says that it failed.
    lines += [f"  {r.grant.label}: {'FAILED' if r.outcome is Outcome.FAILED else r.message}" for r in report.results]
    lines += [f"Note: {note}" for note in report.notes]
    for part in report.role_groups:
        lines += _role_group_lines(part)
    if report.exit_code == 0 and report.dry_run:
        lines.append("Dry run: nothing was changed; the lines above say what a run would do (exit code 0).")
    elif report.exit_code == 0:
        count = _WORDS.get(len(report.results), str(len(report.results)))
        lines.append(
            f"All {count} assignments are in place (exit code 0). New assignments can take a while "
            "to reach Exchange Online and the audit feed; run `python -m shared check` to confirm."
        )
        lines.append(MODEL_HINT if report.role_groups else LEAST_PRIVILEGE_HINT)
    else:
        lines.append("Error: not every assignment is in place (exit code 2).")
    return "\n".join(lines)


def _role_group_lines(part: RoleGroupReport) -> list[str]:
    who = f" signed in as {part.signed_in}" if part.signed_in else ""
    name = f' "{part.group.name}"' if part.group else ""
    title = "Exchange" if part.endpoint == "exchange" else ENDPOINTS[part.endpoint].title
    lines = [f"{title} role group{name} for {part.use} via {part.endpoint_url}{who}"]
    lines += [f"  {r.step.label}: {'FAILED' if r.outcome is StepOutcome.FAILED else r.message}" for r in part.results]
    lines += [f"Note: {note}" for note in part.notes]
    if part.changed_nothing:
        lines.append(f"{title}: everything was already in place; nothing was changed.")
    return lines


def exchange_document(exchange: RoleGroupReport) -> dict[str, Any]:
    """One endpoint's role group part (the Exchange one, or the Security & Compliance one)."""
    return {
        "use": str(exchange.use),
        "endpoint": exchange.endpoint_url,
        "signed_in": exchange.signed_in,
        "role_group": None
        if exchange.group is None
        else {"name": exchange.group.name, "roles": list(exchange.group.roles)},
        "steps": [
            {"cmdlet": r.step.cmdlet, "label": r.step.label, "outcome": str(r.outcome), "message": r.message}
            for r in exchange.results
        ],
        "changed_nothing": exchange.changed_nothing,
        "notes": list(exchange.notes),
        "error": exchange.error,
    }


def report_document(report: GrantReport) -> dict[str, Any]:
    principal = report.principal
    role_id, role_name = wanted_directory_role(report.read_only)
    return {
        "tool": "mailbox-audit-guard",
        "tool_version": __version__,
        "command": "grant-permissions",
        "graph_endpoint": report.graph_url,
        "requested_id": report.requested_id,
        # --tenant only: the customer tenant and where its administrator consents to the multi-tenant app
        **({"tenant_id": report.tenant_id, "consent_url": report.consent_url} if report.tenant_id else {}),
        "read_only": report.read_only,
        "search": report.search,
        "principal": None
        if principal is None
        else {
            "id": principal.id,
            "app_id": principal.app_id,
            "display_name": principal.display_name,
            "type": principal.type,
        },
        "dry_run": report.dry_run,
        "permission_model": "entra-role" if report.directory_role else "role-group",
        "directory_role": {"id": role_id, "name": role_name} if report.directory_role else None,
        "exchange_roles": None if report.exchange is None else exchange_document(report.exchange),
        "compliance_roles": None if report.compliance is None else exchange_document(report.compliance),
        "retention_policy": report.retention_policy,
        "assignments": [
            {"kind": r.grant.kind, "name": r.grant.name, "outcome": str(r.outcome), "message": r.message}
            for r in report.results
        ],
        "notes": list(report.notes),
        "status": "Ok" if report.exit_code == 0 else "Error",
        "exit_code": report.exit_code,
        "error": report.error,
    }
