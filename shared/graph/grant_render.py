"""grant-permissions' output: the text for a terminal and the one JSON document of --json. Pure."""

from __future__ import annotations

from typing import Any

from shared import __version__
from shared.graph.grant_plan import GrantReport, Outcome, wanted_directory_role

LEAST_PRIVILEGE_HINT = (
    "Least privilege: Exchange RBAC role groups (New-ServicePrincipal + Add-RoleGroupMember in "
    "Exchange Online PowerShell) can replace the directory-wide Entra role; see --help."
)


_WORDS = {3: "three", 4: "four", 5: "five"}


def render_text(report: GrantReport) -> str:
    principal = report.principal
    who = (
        f"{principal.display_name or '(no name)'} ({principal.type or 'service principal'}, object id "
        f"{principal.id}, app id {principal.app_id})"
        if principal
        else report.requested_id
    )
    lines = [f"Granting Exchange Online and audit feed permissions to {who} via {report.graph_url}"]
    # A failure's explanation goes to stderr (the CLI prints report.error); the line only says that it failed.
    lines += [f"  {r.grant.label}: {'FAILED' if r.outcome is Outcome.FAILED else r.message}" for r in report.results]
    lines += [f"Note: {note}" for note in report.notes]
    if report.exit_code == 0:
        count = _WORDS.get(len(report.results), str(len(report.results)))
        lines.append(
            f"All {count} assignments are in place (exit code 0). New assignments can take a while "
            "to reach Exchange Online and the audit feed; run `python -m shared check` to confirm."
        )
        lines.append(LEAST_PRIVILEGE_HINT)
    else:
        lines.append("Error: not every assignment is in place (exit code 2).")
    return "\n".join(lines)


def report_document(report: GrantReport) -> dict[str, Any]:
    principal = report.principal
    role_id, role_name = wanted_directory_role(report.read_only)
    return {
        "tool": "mailbox-audit-guard",
        "tool_version": __version__,
        "command": "grant-permissions",
        "graph_endpoint": report.graph_url,
        "requested_id": report.requested_id,
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
        "directory_role": {"id": role_id, "name": role_name},
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
