"""mailbox-audit-actions: user mailboxes audit the baseline's Admin, Delegate and Owner actions.

Judged in the shared Get-Mailbox pass (`mailbox_scan`); fixed by adding only the missing actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.audit_actions import LOGON_TYPES
from shared.controls.base import Column, Control, ReportWording, compliance_frameworks
from shared.controls.mailbox_scan import MailboxScan, mailbox_measurements, read_mailbox_scan
from shared.controls.plans import HASHTABLE
from shared.model import Action, ControlResult, Status

ID = "mailbox-audit-actions"
BASELINE_WORDS = {
    "cis": "cis: the CIS v5–v7 6.1.2 action lists",
    "cis-v4": "cis-v4: the CIS v4 E3 or E5 lists, chosen per mailbox by licence (M365Auditing)",
    "microsoft-default": "microsoft-default: compliant while DefaultAuditSet holds Admin, Delegate and Owner",
}


def evaluate_mailbox_actions(scan: MailboxScan, policy: AuditPolicy) -> ControlResult:
    """NonCompliant while any user mailbox lacks auditing or a baseline action; unreadable mailboxes: Error."""
    expected = f"AuditEnabled True and the {policy.baseline} action lists on every user mailbox"
    if policy.baseline == "microsoft-default":
        expected = "AuditEnabled True and DefaultAuditSet = Admin, Delegate, Owner on every user mailbox"
    failing = scan.noncompliant_users
    details: dict[str, Any] = {
        "baseline": policy.baseline,
        "mailboxes_scanned": scan.users + (scan.shared if policy.include_shared else 0),
        "user_mailboxes": scan.users,
        "shared_mailboxes": scan.shared,
        "mailboxes_noncompliant": failing,
        "not_explicitly_enabled": scan.not_explicitly_enabled,
        "findings": scan.action_findings,
        "unreadable": scan.unreadable,
        "warnings": scan.warnings,
    }
    if (problem := scan.failure(ID, expected, "mailboxes", details)) is not None:
        return problem
    frozen = sum(1 for finding in scan.action_findings if finding["frozen"])
    actual = f"{failing} of {scan.users} user mailboxes fall short"
    meaning = (
        "AuditEnabled is reported as Exchange returns it: with audit-by-default on it is True for every "
        "covered mailbox, whatever was set; only a bypass association exempts a mailbox."
    )
    if failing:
        return ControlResult(
            ID,
            Status.NON_COMPLIANT,
            expected,
            actual,
            f"{failing} user mailboxes lack required audit actions or auditing "
            f"({frozen} have frozen lists that no longer receive Microsoft's new actions). "
            f"Fix: Set-Mailbox -Audit<LogonType> @{{Add=...}}. {meaning}",
            details,
        )
    return ControlResult(
        ID,
        Status.COMPLIANT,
        expected,
        actual,
        f"All {scan.users} user mailboxes audit the {policy.baseline} actions. {meaning}",
        details,
    )


def plan_mailbox_actions_fix(scan: MailboxScan, policy: AuditPolicy) -> list[Action]:
    """Add only the missing actions (hashtable Add), per mailbox; shared mailboxes are report-only."""
    actions = []
    for finding in scan.action_findings:
        if finding["report_only"]:
            continue
        parameters: dict[str, Any] = {"Identity": finding["identity"]}
        if not finding["audit_enabled"]:
            parameters["AuditEnabled"] = True
        if policy.baseline == "microsoft-default":
            if finding["frozen"]:
                parameters["DefaultAuditSet"] = list(LOGON_TYPES)
        else:
            for logon, missing in finding["missing"].items():
                # Never add Send to AuditDelegate: the service rejects it (no baseline asks for it either).
                add = [action for action in missing if not (logon == "Delegate" and action == "Send")]
                if add:
                    parameters[f"Audit{logon}"] = {"@odata.type": HASHTABLE, "Add": add}
        if len(parameters) > 1:
            changed = ", ".join(name for name in parameters if name != "Identity")
            actions.append(Action("Set-Mailbox", parameters, f"Set-Mailbox ({changed})", target=finding["identity"]))
    return actions


def actions_measurements(details: Mapping[str, Any]) -> dict[str, float]:
    counts = mailbox_measurements(details)
    if "mailboxes_noncompliant" in details:
        counts["mailboxes_noncompliant"] = details["mailboxes_noncompliant"]
    return counts


CONTROL = Control(
    id=ID,
    title="User mailboxes audit the required actions",
    question="Do user mailboxes audit the baseline's Admin, Delegate and Owner actions?",
    expected="AuditEnabled True and every baseline action audited",
    remediation="Set-Mailbox -Identity <id> -AuditAdmin/-AuditDelegate/-AuditOwner @{Add=<missing>}",
    frameworks=compliance_frameworks("6.1.2", "6.1.2 (E3) / 6.1.3 (E5)", None),
    read=read_mailbox_scan,
    evaluate=evaluate_mailbox_actions,
    plan_fix=plan_mailbox_actions_fix,
    safe_unattended=False,  # adding actions freezes DefaultAuditSet: Microsoft's later additions stop arriving
    measurements=actions_measurements,
    wording=ReportWording(
        note="AuditEnabled is shown as Exchange returns it: with audit-by-default on it reads True for every "
        "mailbox the default covers, so on its own it proves nothing. Frozen: logon types no longer in "
        "DefaultAuditSet; actions Microsoft adds later do not reach them.",
        fact_labels={
            "baseline": "Baseline",
            "mailboxes_scanned": "Mailboxes scanned",
            "mailboxes_noncompliant": "Non-compliant mailboxes",
            "not_explicitly_enabled": "Mailboxes not explicitly audit-enabled (server-side filter)",
        },
        fact_values={"baseline": BASELINE_WORDS},
        finding_columns=(
            Column("Mailbox", "identity", "mailbox"),
            Column("Type", "type"),
            Column("AuditEnabled", "audit_enabled"),
            Column("Missing actions", "missing", "missing_actions"),
            Column("Frozen logon types", "frozen", none="none"),
            Column("Audit Premium (M365Auditing)", "premium", "yes_no"),
            Column("Report only", "report_only", "yes_no"),
        ),
        table_widths=(24, 10, 9, 30, 11, 9, 7),
    ),
)
