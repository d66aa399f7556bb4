"""The run's evidence document (JSON) and its plain-text rendering for a terminal."""

from __future__ import annotations

from typing import Any

from shared.controls.registry import BY_ID
from shared.model import ControlResult, Outcome, RemediationResult, RunReport, Status

SCHEMA_VERSION = "1"
PERMISSION_MODELS = {
    "role-group": "Exchange RBAC role groups (least privilege: View-Only Configuration + View-Only Recipients to "
    "check; + Audit Logs + Organization Configuration to remediate)",
    "entra-role": "an Entra directory role (Exchange Administrator or Global Reader), broader than the app needs",
}


def exit_code(report: RunReport) -> int:
    """check/remediate: the (read-back) status; revert: 0 only when every revert was applied and verified
    (for a dry run: when every revert could be planned), else 2. An Unverified or Deferred remediation leaves the
    read-back NonCompliant, so remediate exits 1 (2 if the read-back was unreadable) and revert 2."""
    if report.command == "revert":
        done = {Outcome.DRY_RUN if report.dry_run else Outcome.APPLIED, Outcome.ALREADY_COMPLIANT}
        ok = report.remediation and all(step.outcome in done for step in report.remediation)
        return 0 if ok else Status.ERROR.exit_code
    return report.status.exit_code


def control_document(result: ControlResult) -> dict[str, Any]:
    control = BY_ID.get(result.control_id)
    return {
        "id": result.control_id,
        "title": control.title if control else None,
        "question": control.question if control else None,
        "remediation": control.remediation if control else None,
        "status": str(result.status),
        "expected": result.expected,
        "actual": result.actual,
        "message": result.message,
        "frameworks": dict(control.frameworks) if control else {},
        "details": result.details,
    }


def remediation_document(result: RemediationResult) -> dict[str, Any]:
    return {
        "control_id": result.control_id,
        "action": result.action,
        "outcome": str(result.outcome),
        "before": {"status": str(result.before.status), "actual": result.before.actual},
        "after": (
            {"status": str(result.after.status), "actual": result.after.actual} if result.after is not None else None
        ),
        "message": result.message,
        "writes": list(result.writes),
        "warnings": list(result.warnings),
        "details": result.details,
    }


def run_document(report: RunReport, exit_code: int) -> dict[str, Any]:
    """One JSON document per run: what `--json` prints and what evidence archives keep."""
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": "mailbox-audit-guard",
        "tool_version": report.tool_version,
        "run_id": report.run_id,
        "command": report.command,
        "trigger": report.trigger,
        "tenant_id": report.tenant_id,
        "organization": report.organization,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "status": str(report.status),
        "exit_code": exit_code,
        "failed_controls": report.failed_controls,
        "controls": [control_document(result) for result in report.controls],
        # Opt-in controls this run left out: no verdict, so never counted Compliant.
        "not_run": [{"id": control_id, "reason": reason} for control_id, reason in report.not_run.items()],
        "requests_sent": report.requests_sent,
    }
    if report.tenant_name is not None:
        document["tenant_name"] = report.tenant_name
    if report.permission_model is not None:
        document["permission_model"] = {
            "model": report.permission_model,
            "description": PERMISSION_MODELS.get(report.permission_model, report.permission_model),
            "declared_by": "EXO_PERMISSION_MODEL",
        }
    if report.command != "check":
        document["dry_run"] = report.dry_run
        document["caller"] = report.caller
        document["remediation"] = [remediation_document(result) for result in report.remediation]
    if report.activity is not None:
        document["activity"] = report.activity
    return document


def render_text(report: RunReport, exit_code: int) -> str:
    """A readable table for people at a terminal."""
    lines = [
        f"Mailbox Audit Guard {report.tool_version} · {report.command}"
        f"{' (dry run)' if report.dry_run else ''} · tenant {report.tenant_id}"
        f"{f' ({report.organization})' if report.organization else ''}"
        f"{f' · {report.tenant_name}' if report.tenant_name else ''}",
        "",
    ]
    rows = [("CONTROL", "STATUS", "EXPECTED", "ACTUAL")]
    rows += [(r.control_id, str(r.status), r.expected, r.actual) for r in report.controls]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    lines.append("")
    for result in report.controls:
        lines.append(f"- {result.control_id}: {result.message}")
    for control_id, reason in report.not_run.items():
        lines.append(f"- {control_id}: not run: {reason}")
    if report.remediation:
        lines.append("")
        for step in report.remediation:
            lines.append(f"* {step.control_id}: {step.outcome} · {step.action} · {step.message}")
    pending = sorted({str(step.outcome) for step in report.remediation if step.outcome.pending})
    if pending:
        lines += [
            "",
            f"{' and '.join(pending)}: not done yet, not failed. The status below is as read back; run "
            "`python -m shared check` later (Unverified: minutes; Deferred: up to 60 minutes), or let the next "
            "run verify and write what still differs.",
        ]
    lines += ["", f"Overall: {report.status} (exit code {exit_code}) · run {report.run_id}"]
    return "\n".join(lines)
