"""The evidence report's layout: one intermediate form (headings, facts, tables, notes) for Markdown and HTML.

Both renderers (`markdown`, `html`) are pure functions of the JSON document `document.run_document` builds (plus
the `details` the controls add), through `build`, so the two formats carry the same information. Every value from
the document is treated as untrusted text: mailbox names and Exchange messages are escaped, never interpreted.
Missing keys are tolerated and shown as "unknown" or left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.controls.base import Column as ControlColumn
from shared.controls.base import Control
from shared.controls.registry import BY_ID, CONTROLS

MAX_ROWS = 500  # longer lists are cut; the JSON evidence keeps every row
MAX_LINES = 10  # the same for lists inside one cell (e.g. the writes of a per-mailbox remediation)

# ---------------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Badge:
    """A status or outcome: shown as symbol + text + colour, so colour is never the only signal."""

    text: str
    tone: str  # ok | bad | err | info | pending | neutral


@dataclass(frozen=True)
class Pairs:
    """Label/value pairs inside a cell, e.g. framework mappings or missing actions per logon type."""

    items: tuple[tuple[str, str], ...]
    flow: bool = False  # one "label value" line each, wrapping at spaces, instead of two aligned columns


@dataclass(frozen=True)
class Link:
    """Text that points to a section of the same report (a fragment link in HTML, plain text in Markdown)."""

    text: str
    anchor: str


@dataclass(frozen=True)
class Code:
    """An identifier (control id, cmdlet), shown in a monospace font."""

    text: str


@dataclass(frozen=True)
class Note:
    """A remark that belongs next to a value (rendered smaller, prefixed "Note:")."""

    text: str


Part = str | Badge | Pairs | Link | Code | Note
Cell = Part | tuple[Part, ...]


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[Cell]]
    total: int = 0  # rows before the cap; more than len(rows) means some were left out
    row_header: bool = True
    widths: tuple[int, ...] = ()  # column width hints in per cent (HTML only)


@dataclass
class Facts:
    caption: str
    rows: list[tuple[str, Cell]]


@dataclass
class Paragraph:
    text: Cell
    kind: str = "p"  # p | note | verdict


@dataclass
class Bullets:
    caption: str
    items: list[str]


@dataclass
class Section:
    level: int
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)
    badge: Badge | None = None


Block = Table | Facts | Paragraph | Bullets | Section

# ------------------------------------------------------------------------------------------------------ vocabulary

STATUS_TONES = {"Compliant": "ok", "NonCompliant": "bad", "Error": "err"}
# Unverified (written, not yet shown by the read-back) and Deferred (waiting for customisation to propagate) are
# neither done nor failed: "pending", its own symbol and colour, and always its own word.
OUTCOME_TONES = {
    "Applied": "ok",
    "AlreadyCompliant": "ok",
    "DryRun": "info",
    "Unverified": "pending",
    "Deferred": "pending",
    "Failed": "err",
}
TONE_SYMBOLS = {"ok": "✓", "bad": "✗", "err": "⚠", "info": "○", "pending": "◐", "neutral": "•"}

FRAMEWORK_LABELS = {
    "CIS-v7": "CIS v7",
    "CIS-v4": "CIS v4",
    "CISA": "CISA SCuBA",
    "ISO27001-2022": "ISO 27001:2022",
    "ISO27001-2013": "ISO 27001:2013",
    "BIO": "BIO",
    "NIS2": "NIS2",
    "AVG": "AVG/GDPR",
}

# Labels for detail keys that are not one control's: remediation results.
FACT_LABELS = {
    "mailboxes_fixed": "Mailboxes fixed",
    "customisation_enabled_at": "Enable-OrganizationCustomization succeeded at",
    "retry_after": "Organisation-wide writes expected to work from",
    "deferred_at": "Deferred at",
    "verify_seconds": "Read back for (seconds)",
    "read_backs": "Read-backs",
}
PENDING_FACTS = ("customisation_enabled_at", "retry_after", "deferred_at", "verify_seconds", "read_backs")
PENDING_NOTE = (
    "Unverified: Exchange accepted the write but did not show it within the verify window (it can take minutes); "
    "Deferred: a dehydrated tenant's customisation is propagating (up to 60 minutes), so the write waits. Either "
    "way the status above is as read back, and the next run reads again and writes only what still differs."
)


def _fact_label(control: Control | None, key: str) -> str:
    """The control's own label for a detail key, else any control's (the same key means the same everywhere)."""
    if control is not None and key in control.wording.fact_labels:
        return control.wording.fact_labels[key]
    return _ALL_FACT_LABELS.get(key, key)


_ALL_FACT_LABELS: dict[str, str] = {
    key: label for control in CONTROLS for key, label in control.wording.fact_labels.items()
} | FACT_LABELS


# ------------------------------------------------------------------------------------------------------ formatting


def _text(value: Any, none: str = "unknown") -> str:
    """One value as an administrator reads it: PowerShell booleans, whole numbers without '.0'."""
    if value is None:
        return none
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return "; ".join(f"{key}: {_text(item)}" for key, item in value.items()) or "none"
    if isinstance(value, list | tuple | set):
        return ", ".join(_text(item) for item in value) or "none"
    return str(value)


def _lines(values: Any) -> Cell:
    """A list shown one item a line, at most MAX_LINES of them."""
    items = [_text(value) for value in values] if isinstance(values, list | tuple) else []
    if not items:
        return "none"
    more = len(items) - MAX_LINES
    return tuple(items[:MAX_LINES]) + ((f"… and {more} more; the JSON evidence has all",) if more > 0 else ())


def _yes_no(value: Any, yes: str = "Yes", no: str = "No") -> str:
    return "unknown" if value is None else (yes if value else no)


def _status(value: Any) -> Badge:
    text = _text(value)
    return Badge(text, STATUS_TONES.get(text, "neutral"))


def _outcome(value: Any) -> Badge:
    text = _text(value)
    return Badge(text, OUTCOME_TONES.get(text, "neutral"))


def _frameworks(frameworks: Any) -> Cell:
    if not isinstance(frameworks, Mapping) or not frameworks:
        return "none recorded"
    order = [key for key in FRAMEWORK_LABELS if key in frameworks]
    order += [key for key in frameworks if key not in FRAMEWORK_LABELS]
    items = []
    for key in order:
        ref = _text(frameworks[key])
        if key in ("NIS2", "AVG") and ref.isdigit():
            ref = f"art. {ref}"
        items.append((FRAMEWORK_LABELS.get(key, str(key)), ref))
    return Pairs(tuple(items), flow=True)


def format_timestamp(value: Any) -> str:
    if not isinstance(value, str):
        return _text(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return f"{moment:%Y-%m-%d %H:%M:%S} (time zone not recorded)"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _duration(started: Any, finished: Any) -> str | None:
    try:
        seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return None
    return f"{seconds:.1f} s"


def exit_meaning(command: Any, exit_code: Any, dry_run: Any = False) -> str:
    """What the run's exit code means, in the original script's terms."""
    exit_code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None
    if command == "revert" and dry_run is True:
        return {
            0: "dry run: the revert could be planned; nothing was written",
            2: "dry run: the revert could not be planned (the current state is unknown)",
        }.get(exit_code, "not a documented exit code")
    if command == "revert":
        return {
            0: "the revert was applied and verified by reading back",
            2: "the revert was not applied, or could not be verified",
        }.get(exit_code, "not a documented exit code")
    meaning = {
        0: "compliant: every control meets its expected value",
        1: "non-compliant: at least one control does not meet its expected value",
        2: "error: at least one control could not be read, so compliance is unknown (fail closed)",
    }.get(exit_code, "not a documented exit code")
    if command == "remediate" and exit_code in (0, 1, 2):
        meaning += (
            " (dry run: the state as found, nothing was written)"
            if dry_run is True
            else " (as read back after the remediation)"
        )
    return meaning


def _slug(text: str, taken: set[str]) -> str:
    base = "control-" + (re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x")
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


# --------------------------------------------------------------------------------------------- building the model

Column = tuple[str, Callable[[Mapping[str, Any]], Cell]]


def _get(key: str, none: str = "unknown") -> Callable[[Mapping[str, Any]], Cell]:
    return lambda row: _text(row.get(key), none)


def _mailbox(row: Mapping[str, Any]) -> Cell:
    identity, upn = _text(row.get("identity")), row.get("upn")
    return (identity, str(upn)) if upn not in (None, "", identity) else identity


def _missing(row: Mapping[str, Any]) -> Cell:
    missing = row.get("missing")
    if not isinstance(missing, Mapping):
        return _text(missing, "none")
    items = tuple((str(kind), _text(actions)) for kind, actions in missing.items() if actions)
    return Pairs(items) if items else "none"


def _entry(row: Mapping[str, Any]) -> Cell:
    entry = row.get("entry")
    if isinstance(entry, Mapping):
        return Pairs(tuple((str(key), _text(value)) for key, value in entry.items())) if entry else "empty entry"
    return _text(entry)


LIST_COLUMNS: dict[str, list[Column]] = {
    "exceptions_used": [
        ("Identity", _get("identity")),
        ("Reason", _get("reason")),
        ("Approved by", _get("approved_by")),
        ("Expires", _get("expires")),
    ],
    "exceptions_rejected": [("Entry", _entry), ("Why it does not count", _get("problem"))],
    "mailboxes_failed": [("Mailbox", _get("identity")), ("Reason", _get("reason"))],
}
# Keys the columns above show; any other key a row carries gets a column of its own, so nothing is dropped.
SHOWN_KEYS: dict[str, set[str]] = {
    "exceptions_used": {"identity", "reason", "approved_by", "expires", "control"},
    "exceptions_rejected": {"entry", "problem"},
    "mailboxes_failed": {"identity", "reason"},
}
TABLE_WIDTHS: dict[str, tuple[int, ...]] = {"exceptions_rejected": (60, 40)}


def _cell(column: ControlColumn) -> Callable[[Mapping[str, Any]], Cell]:
    """How a control's declared finding column turns a finding into a cell."""
    if column.format == "mailbox":
        return _mailbox
    if column.format == "missing_actions":
        return _missing
    if column.format == "yes_no":
        return lambda row: _yes_no(row.get(column.key), column.yes, column.no)
    return _get(column.key, column.none)


def _finding_columns(control: Control | None) -> tuple[list[Column], set[str]]:
    """A control's findings columns and the keys they show."""
    if control is None:
        return [], set()
    declared = control.wording.finding_columns
    return ([(column.label, _cell(column)) for column in declared], {key for column in declared for key in column.keys})


LIST_CAPTIONS = {
    "findings": "Findings",
    "exceptions_used": "Exceptions used (written exceptions that excuse a finding)",
    "exceptions_rejected": "Exceptions rejected (they do not count)",
    "mailboxes_failed": "Mailboxes that could not be fixed",
}


def _table(
    caption: str,
    columns: list[Column],
    rows: list[Mapping[str, Any]],
    *,
    row_header: bool = True,
    widths: tuple[int, ...] = (),
) -> Table:
    kept = rows[:MAX_ROWS]
    return Table(
        f"{caption} ({len(rows)})",
        [label for label, _ in columns],
        [[getter(row) for _, getter in columns] for row in kept],
        total=len(rows),
        row_header=row_header,
        widths=widths if len(widths) == len(columns) else (),
    )


def _generic_columns(rows: list[Mapping[str, Any]], shown: set[str] | None = None) -> list[Column]:
    """One column per key the rows carry (minus those already shown), in order of appearance."""
    keys: list[str] = []
    for row in rows[:MAX_ROWS]:
        keys += [str(key) for key in row if str(key) not in keys and str(key) not in (shown or set())]
    return [(key, _get(key, "")) for key in keys]


def _details_blocks(control_id: str, details: Any, result: list[tuple[str, Cell]]) -> list[Block]:
    """The result with the values read, then findings, exceptions and warnings; unknown keys shown generically."""
    facts: list[tuple[str, Cell]] = list(result)
    control = BY_ID.get(control_id)
    if not isinstance(details, Mapping):
        return [
            Facts(
                "Result and values read", facts + ([] if details in (None, "", {}) else [("details", _text(details))])
            )
        ]
    lists: list[Block] = []
    for raw_key, value in details.items():
        key = str(raw_key)
        if key == "warnings":
            continue
        if isinstance(value, str) and control is not None and key in control.wording.fact_values:
            facts.append((_fact_label(control, key), control.wording.fact_values[key].get(value, value)))
        elif key in LIST_CAPTIONS or (isinstance(value, list) and _dicts(value)):
            rows = _dicts(value)
            if key == "findings":
                known, shown = _finding_columns(control)
                widths = control.wording.table_widths if control is not None else ()
            else:
                known, shown = LIST_COLUMNS.get(key, []), SHOWN_KEYS.get(key, set())
                widths = TABLE_WIDTHS.get(key, ())
            columns = known + _generic_columns(rows, shown if known else None)
            if not rows:
                lists.append(Paragraph(f"{LIST_CAPTIONS.get(key, key)}: none."))
            else:
                lists.append(
                    _table(
                        LIST_CAPTIONS.get(key, key),
                        columns,
                        rows,
                        row_header=key != "exceptions_rejected",
                        widths=widths,
                    )
                )
        elif isinstance(value, Mapping):
            facts.append(
                (
                    _fact_label(control, key),
                    Pairs(tuple((str(k), _text(v)) for k, v in value.items())) if value else "none",
                )
            )
        else:
            facts.append((_fact_label(control, key), _text(value)))
    blocks: list[Block] = [Facts("Result and values read", facts)]
    blocks += lists
    warnings = details.get("warnings")
    if isinstance(warnings, list) and warnings:
        blocks.append(Bullets("Warnings", [_text(w) for w in warnings]))
    return blocks


def _side(state: Any) -> Cell:
    if not isinstance(state, Mapping):
        return "not read back"
    return (_status(state.get("status")), _text(state.get("actual")))


def _remediation_blocks(items: list[Mapping[str, Any]]) -> list[Block]:
    return [
        _table(
            "Remediation in this run",
            [
                ("Before", lambda r: _side(r.get("before"))),
                ("Action", _get("action")),
                ("Outcome", lambda r: _outcome(r.get("outcome"))),
                ("After", lambda r: _side(r.get("after"))),
                ("Message", _get("message", "")),
                ("Writes", lambda r: _lines(r.get("writes"))),
            ],
            items,
            row_header=False,
            widths=(15, 15, 14, 15, 19, 22),
        ),
        *_remediation_extras(items),
    ]


def _pending_value(key: str, value: Any) -> str:
    return format_timestamp(value) if key.endswith(("_at", "_after")) else _text(value)


def _remediation_extras(items: list[Mapping[str, Any]]) -> list[Block]:
    """Per-mailbox results and what Exchange said, below the remediation table."""
    blocks: list[Block] = []
    for item in items:
        details = item.get("details")
        if isinstance(details, Mapping):
            if "mailboxes_fixed" in details:
                blocks.append(
                    Facts(
                        "Remediation result", [(FACT_LABELS["mailboxes_fixed"], _text(details.get("mailboxes_fixed")))]
                    )
                )
            pending: list[tuple[str, Cell]] = [
                (FACT_LABELS[key], _pending_value(key, details[key])) for key in PENDING_FACTS if key in details
            ]
            if pending:
                blocks.append(Facts(f"{_text(item.get('outcome'))}: {_text(item.get('control_id'))}", pending))
            failed = _dicts(details.get("mailboxes_failed"))
            if failed:
                columns = LIST_COLUMNS["mailboxes_failed"] + _generic_columns(failed, SHOWN_KEYS["mailboxes_failed"])
                blocks.append(_table(LIST_CAPTIONS["mailboxes_failed"], columns, failed))
        warnings = item.get("warnings")
        if isinstance(warnings, list) and warnings:
            blocks.append(Bullets("What Exchange said during the remediation", [_text(w) for w in warnings]))
    return blocks


def _run_facts(doc: Mapping[str, Any]) -> Facts:
    command = _text(doc.get("command"))
    if doc.get("dry_run") is True:
        command += " (dry run: nothing was written)"
    rows: list[tuple[str, Cell]] = [
        ("Tenant", _text(doc.get("tenant_id"))),
        ("Organisation", _text(doc.get("organization"))),
        ("Started", format_timestamp(doc.get("started_at"))),
        ("Finished", format_timestamp(doc.get("finished_at")) if doc.get("finished_at") else "not recorded"),
    ]
    if duration := _duration(doc.get("started_at"), doc.get("finished_at")):
        rows.append(("Duration", duration))
    rows += [
        ("Tool", f"{_text(doc.get('tool'), 'mailbox-audit-guard')} {_text(doc.get('tool_version'))}"),
        ("Run id", _text(doc.get("run_id"))),
        ("Command", command),
        ("Trigger", _text(doc.get("trigger"))),
    ]
    model = doc.get("permission_model")
    if isinstance(model, Mapping):
        rows.append(("Permission model", f"{_text(model.get('description'))} (declared by EXO_PERMISSION_MODEL)"))
    if "caller" in doc or doc.get("command") in ("remediate", "revert"):
        rows.append(("Caller", _text(doc.get("caller"), "not recorded")))
    rows += [
        ("Controls not compliant", _text(doc.get("failed_controls"), "none")),
        ("Requests sent to Exchange", _text(doc.get("requests_sent"))),
        ("Evidence schema version", _text(doc.get("schema_version"))),
    ]
    return Facts("Run", rows)


def build(doc: Mapping[str, Any]) -> tuple[str, list[Block]]:
    """The report as a title and blocks, independent of the output format."""
    organization = doc.get("organization") or doc.get("tenant_id") or "unknown tenant"
    title = f"Mailbox audit evidence: {organization}"
    controls = _dicts(doc.get("controls"))
    remediation = _dicts(doc.get("remediation"))
    taken: set[str] = set()
    anchors = [_slug(str(control.get("id", "")), taken) for control in controls]

    verdict = Paragraph(
        (
            Badge(f"Overall status: {_text(doc.get('status'))}", STATUS_TONES.get(str(doc.get("status")), "neutral")),
            f"Exit code {_text(doc.get('exit_code'))}: "
            f"{exit_meaning(doc.get('command'), doc.get('exit_code'), doc.get('dry_run'))}.",
        ),
        kind="verdict",
    )
    blocks: list[Block] = [verdict]
    if any(str(step.get("outcome")) in ("Unverified", "Deferred") for step in remediation):
        blocks.append(Paragraph(PENDING_NOTE, kind="note"))
    blocks.append(_run_facts(doc))
    if isinstance(doc.get("warnings"), list) and doc["warnings"]:
        blocks.append(Bullets("Run warnings", [_text(w) for w in doc["warnings"]]))

    summary = Table(
        "Result per control",
        ["Control", "Status", "Expected and actual", "Message", "Framework mappings"],
        [],
        total=len(controls),
        widths=(12, 12, 26, 31, 19),
    )
    for control, anchor in zip(controls, anchors, strict=True):
        message: list[Part] = [_text(control.get("message"), "")]
        known_control = BY_ID.get(str(control.get("id")))
        if known_control is not None and known_control.wording.summary_note:
            message.append(Note(known_control.wording.summary_note))
        name = Link(_text(control.get("title"), "(untitled control)"), anchor)
        summary.rows.append(
            [
                (name, Code(_text(control.get("id")))),
                _status(control.get("status")),
                Pairs((("Expected", _text(control.get("expected"))), ("Actual", _text(control.get("actual"))))),
                tuple(message),
                _frameworks(control.get("frameworks")),
            ]
        )
    summary_blocks: list[Block] = [summary] if controls else [Paragraph("This run has no control results.")]
    if not_run := _dicts(doc.get("not_run")):
        summary_blocks.append(
            Bullets(
                "Not run (opt-in; no verdict, so never counted Compliant)",
                [f"{_text(item.get('id'))}: {_text(item.get('reason'), '')}" for item in not_run],
            )
        )
    blocks.append(Section(2, "Summary", "summary", summary_blocks))

    details = Section(2, "Details per control", "details")
    for control, anchor in zip(controls, anchors, strict=True):
        control_id = str(control.get("id"))
        section = Section(
            3,
            f"{control_id}: {_text(control.get('title'), '(untitled control)')}",
            anchor,
            badge=_status(control.get("status")),
        )
        if (known_control := BY_ID.get(control_id)) is not None and (note := known_control.wording.note):
            section.blocks.append(Paragraph(Note(note), kind="note"))
        result: list[tuple[str, Cell]] = [
            ("Expected", _text(control.get("expected"))),
            ("Actual", _text(control.get("actual"))),
            ("Message", _text(control.get("message"), "")),
        ]
        section.blocks += _details_blocks(control_id, control.get("details"), result)
        if steps := [step for step in remediation if str(step.get("control_id")) == control_id]:
            section.blocks += _remediation_blocks(steps)
        details.blocks.append(section)
    known = {str(control.get("id")) for control in controls}
    if others := [step for step in remediation if str(step.get("control_id")) not in known]:
        details.blocks.append(
            Section(3, "Remediation of controls without a result", _slug("other", taken), _remediation_blocks(others))
        )
    if controls or others:
        blocks.append(details)
    if isinstance(activity := doc.get("activity"), Mapping):
        blocks.append(_activity_section(activity))
    return title, blocks


# ------------------------------------------------------------------------------------------------ activity watch

HEALTH_TONES = {"OK": "ok", "Attention": "bad", "Error": "err", "Unknown": "err"}
SEVERITY_TONES = {"high": "err", "medium": "bad", "low": "info"}


def _activity_section(activity: Mapping[str, Any]) -> Section:
    """The activity watch's feed health and the alerts it raised in the report's window (shared.activity.history)."""
    health = _text(activity.get("health"))
    section = Section(
        2, "Activity watch", "activity", badge=Badge(f"Feed health: {health}", HEALTH_TONES.get(health, "neutral"))
    )
    if activity.get("error"):
        section.blocks.append(Paragraph(_text(activity.get("error")), kind="note"))
        return section
    days = _text(activity.get("window_days"), "7")
    section.blocks.append(
        Paragraph(
            "What the activity watch (the Office 365 Management Activity feed, read every few minutes) saw, from its "
            f"state ({_text(activity.get('source'))}) as of {format_timestamp(activity.get('generated_at'))}: whether "
            f"the feed is read without gaps, and the alerts raised in the last {days} days."
        )
    )
    if reasons := [_text(reason) for reason in activity.get("health_reasons") or []]:
        section.blocks.append(
            Bullets("Why the feed needs attention" if health != "Unknown" else "Feed health", reasons)
        )
    last: Mapping[str, Any] = activity["last_pass"] if isinstance(activity.get("last_pass"), Mapping) else {}
    section.blocks.append(
        Facts(
            "Feed health",
            [
                ("Last pass", format_timestamp(last.get("finished_at")) if last else "none recorded"),
                ("Last pass status", _status_word(last.get("status")) if last else "none recorded"),
                ("Last pass without error", format_timestamp(activity.get("last_ok_pass_at"))),
                ("Records in the last pass", _text(last.get("records_processed"))),
                ("Feed lag (minutes)", _text(last.get("feed_lag_minutes"), "unknown (no record seen yet)")),
                ("Blobs waiting for a retry", str(len(_dicts(activity.get("failed_blobs"))))),
                (f"Gaps in the last {days} days", str(len(_dicts(activity.get("gaps"))))),
            ],
        )
    )
    feeds: list[Column] = [
        ("Content type", lambda row: Code(_text(row.get("content_type")))),
        (
            "Read completely up to",
            lambda row: format_timestamp(row.get("listed_until")) if row.get("listed_until") else "not read yet",
        ),
        (
            "Subscription started",
            lambda row: (
                format_timestamp(row.get("subscription_started")) if row.get("subscription_started") else "not recorded"
            ),
        ),
    ]
    section.blocks.append(_table("Checkpoint per content type", feeds, _dicts(activity.get("feeds"))))
    if gaps := _dicts(activity.get("gaps")):
        section.blocks.append(
            Bullets("Gaps: content that could not be read and is lost", [_text(g.get("message")) for g in gaps])
        )
    if failed := _dicts(activity.get("failed_blobs")):
        blob_columns: list[Column] = [
            ("Content type", _get("content_type")),
            ("Blob", _get("content_id")),
            ("Attempts", _get("attempts")),
            ("Last error", _get("last_error")),
        ]
        section.blocks.append(_table("Blobs retried by the next pass", blob_columns, failed))
    total = activity.get("alerts_total")
    by_detection = activity.get("alerts_by_detection")
    if not total:
        section.blocks.append(Paragraph(f"No alert was raised in the last {days} days."))
        return section
    section.blocks.append(
        Facts(
            f"Alert counts, last {days} days",
            [
                ("Alerts", _text(total)),
                ("By detection", _text(by_detection)),
                ("By severity", _text(activity.get("alerts_by_severity"))),
            ],
        )
    )
    columns: list[Column] = [
        ("Time (event)", lambda row: format_timestamp(row.get("time"))),
        (
            "Severity",
            lambda row: Badge(_text(row.get("severity")), SEVERITY_TONES.get(str(row.get("severity")), "neutral")),
        ),
        ("Detection", lambda row: Code(_text(row.get("detection")))),
        (
            "Actor and mailbox",
            lambda row: Pairs((("Actor", _text(row.get("actor"))), ("Mailbox", _text(row.get("mailbox"), "none")))),
        ),
        (
            "Operation and origin",
            lambda row: Pairs((("Operation", _text(row.get("operation"))), ("From", _origin(row)))),
        ),
        (
            "Why it fired",
            lambda row: (
                _text(row.get("message"), ""),
                Note(f"alert {_text(row.get('id'))}; {_text(row.get('record_count'), '?')} record(s)"),
            ),
        ),
    ]
    alerts = _dicts(activity.get("alerts"))
    table = _table(f"Alerts raised in the last {days} days, newest event first", columns, alerts, row_header=False)
    table.total = max(table.total, int(total) if isinstance(total, int) else 0)
    section.blocks.append(table)
    return section


def _status_word(value: Any) -> Cell:
    text = _text(value)
    return Badge(text, {"Clear": "ok", "Alerts": "bad", "Error": "err"}.get(text, "neutral"))


def _origin(row: Mapping[str, Any]) -> str:
    address = _text(row.get("client_ip"), "no client address")
    return f"{address} ({row['country']})" if row.get("country") else address


# Bidirectional controls (e.g. U+202E) in a mailbox name could make a report show one address as another;
# they are shown as visible escapes instead.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def neutralise_bidi(text: str) -> str:
    return _BIDI_CONTROLS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def footer(doc: Mapping[str, Any]) -> str:
    return (
        f"Generated by {_text(doc.get('tool'), 'mailbox-audit-guard')} {_text(doc.get('tool_version'))} from the "
        f"run's JSON evidence (schema {_text(doc.get('schema_version'))}), which is the record; this report "
        "is a rendering of it."
    )
