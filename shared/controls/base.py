"""What a control provides: its catalogue entry, how it is read, judged and fixed, and how reports word it.

A control is one module in this package that defines `CONTROL`, and one line in `registry.py`. The ids appear in
telemetry, alert queries and evidence reports: never rename one, add a new id instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.config.settings import AuditPolicy
from shared.controls.reading import RunContext
from shared.model import Action, ControlResult, Status

ColumnFormat = Literal["text", "mailbox", "missing_actions", "yes_no"]


@dataclass(frozen=True)
class Column:
    """One column of a control's findings table in the evidence report: which key, shown how."""

    label: str
    key: str
    format: ColumnFormat = "text"
    none: str = "unknown"  # shown for a missing or empty value
    yes: str = "Yes"  # yes_no columns
    no: str = "No"

    @property
    def keys(self) -> tuple[str, ...]:
        """The finding keys this column shows (a mailbox column shows the UPN beside the identity)."""
        return (self.key, "upn") if self.format == "mailbox" else (self.key,)


@dataclass(frozen=True)
class ReportWording:
    """How the evidence report words one control. Pure data: the report layout interprets it."""

    note: str | None = None  # above the control's details
    summary_note: str | None = None  # beside the message in the summary table
    fact_labels: Mapping[str, str] = field(default_factory=dict)  # detail key -> label
    fact_values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # detail key -> value -> words
    finding_columns: tuple[Column, ...] = ()
    table_widths: tuple[int, ...] = ()  # per cent, one per finding column (HTML only)


def no_measurements(details: Mapping[str, Any]) -> dict[str, float]:
    return {}


def compliance_frameworks(cis_v7: str, cis_v4: str, cisa: str | None) -> dict[str, str]:
    """The framework mappings of an audit control: its CIS (and CISA) references plus the shared logging clauses."""
    mapping = {"CIS-v7": cis_v7, "CIS-v4": cis_v4}
    if cisa:
        mapping["CISA"] = cisa
    # Every audit control serves the same logging clauses (controls.md §2).
    mapping |= {"ISO27001-2022": "A.8.15", "ISO27001-2013": "A.12.4.1", "BIO": "12.4.1", "NIS2": "21", "AVG": "32"}
    return mapping


Planner = Callable[[Any, AuditPolicy], list[Action]]


@dataclass(frozen=True)
class Control:
    """One auditable setting: where it sits in the frameworks, and how it is read, judged, fixed and reported.

    `read` talks to Exchange through the run context; `evaluate` and the planners are pure functions of what it
    read (the snapshot) and the policy, so each rule is unit-testable without a tenant.
    """

    id: str
    title: str
    question: str
    expected: str
    remediation: str
    frameworks: Mapping[str, str]
    read: Callable[[RunContext], Any]
    evaluate: Callable[[Any, AuditPolicy], ControlResult]
    plan_fix: Planner
    plan_revert: Planner | None = None
    # May the daily timer fix it without a person asking? Not for changes with trade-offs: adding actions
    # freezes DefaultAuditSet, and removing a bypass may break a deliberate (if unwritten) exemption.
    safe_unattended: bool = True
    # False: there is nothing to write (a symptom such as audit-pipeline); remediate only checks it.
    remediable: bool = True
    wording: ReportWording = field(default_factory=ReportWording)
    # The control's counts on MailboxAuditCheckCompleted (docs/telemetry.md), from its result's details.
    measurements: Callable[[Mapping[str, Any]], dict[str, float]] = no_measurements
    # Which admin API it reads and writes: "exchange" (Exchange Online) or "compliance" (Security & Compliance).
    endpoint: Literal["exchange", "compliance"] = "exchange"
    # An opt-in control: why it is not run under this policy (None: it runs). A control not run has no verdict
    # (never Compliant); the run's report lists it with this reason.
    not_run: Callable[[AuditPolicy], str | None] | None = None

    @property
    def frameworks_compact(self) -> str:
        """The `frameworks` telemetry dimension, e.g. `CIS-v7:6.1.1;CIS-v4:6.1.1;...`."""
        return ";".join(f"{name}:{ref}" for name, ref in self.frameworks.items())

    def error(self, reason: str) -> ControlResult:
        """Fail closed: a control whose value could not be read is an Error, never Compliant."""
        return ControlResult(
            self.id,
            Status.ERROR,
            self.expected,
            "unreadable",
            f"Could not read the value, so compliance is unknown: {reason}",
        )


def powershell_bool(value: Any) -> str:
    """Show a value the way an Exchange administrator reads it in PowerShell."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return repr(value)
