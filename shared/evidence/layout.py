"""The evidence report for people and auditors: Markdown and one self-contained HTML file.

Both renderers are pure functions of the JSON document `shared.evidence.document.run_document` builds (plus the `details` the
controls add). They share one intermediate form (headings, fact lists, tables, notes), so the two formats carry the
same information. Every value from the document is treated as untrusted text: mailbox names and Exchange messages
are escaped, never interpreted. Missing keys are tolerated and shown as "unknown" or left out.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_ROWS = 500  # longer lists are cut; the JSON evidence keeps every row
MAX_LINES = 10  # the same for lists inside one cell (e.g. the writes of a per-mailbox remediation)

# ---------------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Badge:
    """A status or outcome: shown as symbol + text + colour, so colour is never the only signal."""

    text: str
    tone: str  # ok | bad | err | info | neutral


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
OUTCOME_TONES = {"Applied": "ok", "AlreadyCompliant": "ok", "DryRun": "info", "Failed": "err"}
TONE_SYMBOLS = {"ok": "✓", "bad": "✗", "err": "⚠", "info": "○", "neutral": "•"}

FRAMEWORK_LABELS = {
    "CIS-v7": "CIS v7", "CIS-v4": "CIS v4", "CISA": "CISA SCuBA", "ISO27001-2022": "ISO 27001:2022",
    "ISO27001-2013": "ISO 27001:2013", "BIO": "BIO", "NIS2": "NIS2", "AVG": "AVG/GDPR",
}

FACT_LABELS = {
    "UnifiedAuditLogIngestionEnabled": "UnifiedAuditLogIngestionEnabled (audit log search)",
    "AdminAuditLogEnabled": "AdminAuditLogEnabled (context only; CIS does not require it)",
    "AdminAuditLogAgeLimit": "AdminAuditLogAgeLimit (context only)",
    "associations_total": "Bypass associations read",
    "bypass_enabled": "Associations with AuditBypassEnabled = True",
    "baseline": "Baseline",
    "mailboxes_scanned": "Mailboxes scanned",
    "mailboxes_noncompliant": "Non-compliant mailboxes",
    "not_explicitly_enabled": "Mailboxes not explicitly audit-enabled (server-side filter)",
    "minimum_days": "Minimum AuditLogAgeLimit (days)",
    "organization": "Organisation",
    "is_dehydrated": "Dehydrated tenant (IsDehydrated)",
    "mailboxes_fixed": "Mailboxes fixed",
}

BASELINES = {
    "cis": "cis: the CIS v5–v7 6.1.2 action lists",
    "cis-v4": "cis-v4: the CIS v4 E3 or E5 lists, chosen per mailbox by licence (M365Auditing)",
    "microsoft-default": "microsoft-default: compliant while DefaultAuditSet holds Admin, Delegate and Owner",
}

INDEPENDENT_SWITCHES = (
    "org-audit-enabled (audit-by-default) and audit-log-search (unified audit log ingestion) are independent "
    "switches: a Compliant result for one says nothing about the other. Audit records are searchable only while "
    "audit-log-search is Compliant.")

CONTROL_NOTES = {
    "org-audit-enabled": INDEPENDENT_SWITCHES,
    "audit-log-search": INDEPENDENT_SWITCHES + " The value is read on the Exchange Online endpoint; the Security & "
                                              "Compliance endpoint always reports False.",
    "audit-bypass": "A bypass association exempts an account from mailbox auditing altogether. CIS allows it only with "
                    "a written exception (the register named by AUDIT_EXCEPTIONS_FILE).",
    "mailbox-audit-actions": "AuditEnabled is shown as Exchange returns it: with audit-by-default on it reads True for "
                             "every mailbox the default covers, so on its own it proves nothing. Frozen: logon types "
                             "no longer in DefaultAuditSet; actions Microsoft adds later do not reach them.",
    "mailbox-audit-retention": "AuditLogAgeLimit 00:00:00 purges the mailbox's own audit records (a known "
                               "anti-forensics step, MITRE T1070): reported as possible tampering.",
}

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


def _timestamp(value: Any) -> str:
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
        return {0: "dry run: the revert could be planned; nothing was written",
                2: "dry run: the revert could not be planned (the current state is unknown)",
                }.get(exit_code, "not a documented exit code")
    if command == "revert":
        return {0: "the revert was applied and verified by reading back",
                2: "the revert was not applied, or could not be verified"}.get(exit_code, "not a documented exit code")
    meaning = {0: "compliant: every control meets its expected value",
               1: "non-compliant: at least one control does not meet its expected value",
               2: "error: at least one control could not be read, so compliance is unknown (fail closed)",
               }.get(exit_code, "not a documented exit code")
    if command == "remediate" and exit_code in (0, 1, 2):
        meaning += " (dry run: the state as found, nothing was written)" if dry_run is True else \
            " (as read back after the remediation)"
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


FINDING_COLUMNS: dict[str, list[Column]] = {
    "audit-bypass": [("Identity", _get("identity")), ("Name", _get("name")), ("Guid", _get("guid"))],
    "mailbox-audit-actions": [
        ("Mailbox", _mailbox), ("Type", _get("type")), ("AuditEnabled", _get("audit_enabled")),
        ("Missing actions", _missing), ("Frozen logon types", _get("frozen", "none")),
        ("Audit Premium (M365Auditing)", lambda r: _yes_no(r.get("premium"))),
        ("Report only", lambda r: _yes_no(r.get("report_only"))),
    ],
    "mailbox-audit-retention": [
        ("Mailbox", _mailbox), ("Type", _get("type")), ("AuditLogAgeLimit", _get("age_limit")),
        ("Days", _get("days")),
        ("Possible tampering", lambda r: _yes_no(r.get("tampering"), "Yes: limit is zero, records purged", "No")),
    ],
}
LIST_COLUMNS: dict[str, list[Column]] = {
    "exceptions_used": [("Identity", _get("identity")), ("Reason", _get("reason")),
                        ("Approved by", _get("approved_by")), ("Expires", _get("expires"))],
    "exceptions_rejected": [("Entry", _entry), ("Why it does not count", _get("problem"))],
    "mailboxes_failed": [("Mailbox", _get("identity")), ("Reason", _get("reason"))],
}
# Keys the columns above show; any other key a row carries gets a column of its own, so nothing is dropped.
SHOWN_KEYS: dict[str, set[str]] = {
    "audit-bypass": {"identity", "name", "guid"},
    "mailbox-audit-actions": {"identity", "upn", "type", "audit_enabled", "missing", "frozen", "premium",
                              "report_only"},
    "mailbox-audit-retention": {"identity", "upn", "type", "age_limit", "days", "tampering"},
    "exceptions_used": {"identity", "reason", "approved_by", "expires", "control"},
    "exceptions_rejected": {"entry", "problem"},
    "mailboxes_failed": {"identity", "reason"},
}
TABLE_WIDTHS: dict[str, tuple[int, ...]] = {
    "mailbox-audit-actions": (24, 10, 9, 30, 11, 9, 7),
    "exceptions_rejected": (60, 40),
}
LIST_CAPTIONS = {
    "findings": "Findings",
    "exceptions_used": "Exceptions used (written exceptions that excuse a finding)",
    "exceptions_rejected": "Exceptions rejected (they do not count)",
    "mailboxes_failed": "Mailboxes that could not be fixed",
}


def _table(caption: str, columns: list[Column], rows: list[Mapping[str, Any]], *, row_header: bool = True,
           widths: tuple[int, ...] = ()) -> Table:
    kept = rows[:MAX_ROWS]
    return Table(f"{caption} ({len(rows)})", [label for label, _ in columns],
                 [[getter(row) for _, getter in columns] for row in kept], total=len(rows), row_header=row_header,
                 widths=widths if len(widths) == len(columns) else ())


def _generic_columns(rows: list[Mapping[str, Any]], shown: set[str] | None = None) -> list[Column]:
    """One column per key the rows carry (minus those already shown), in order of appearance."""
    keys: list[str] = []
    for row in rows[:MAX_ROWS]:
        keys += [str(key) for key in row if str(key) not in keys and str(key) not in (shown or set())]
    return [(key, _get(key, "")) for key in keys]


def _details_blocks(control_id: str, details: Any, result: list[tuple[str, Cell]]) -> list[Block]:
    """The result with the values read, then findings, exceptions and warnings; unknown keys shown generically."""
    facts: list[tuple[str, Cell]] = list(result)
    if not isinstance(details, Mapping):
        return [Facts("Result and values read", facts + ([] if details in (None, "", {}) else
                                                          [("details", _text(details))]))]
    lists: list[Block] = []
    for raw_key, value in details.items():
        key = str(raw_key)
        if key == "warnings":
            continue
        if key == "baseline" and isinstance(value, str):
            facts.append((FACT_LABELS[key], BASELINES.get(value, value)))
        elif key in LIST_CAPTIONS or (isinstance(value, list) and _dicts(value)):
            rows = _dicts(value)
            spec = control_id if key == "findings" else key
            known = FINDING_COLUMNS.get(spec) or LIST_COLUMNS.get(spec) or []
            columns = known + _generic_columns(rows, SHOWN_KEYS.get(spec) if known else None)
            if not rows:
                lists.append(Paragraph(f"{LIST_CAPTIONS.get(key, key)}: none."))
            else:
                lists.append(_table(LIST_CAPTIONS.get(key, key), columns, rows, row_header=key != "exceptions_rejected",
                                    widths=TABLE_WIDTHS.get(spec, ())))
        elif isinstance(value, Mapping):
            facts.append((FACT_LABELS.get(key, key),
                          Pairs(tuple((str(k), _text(v)) for k, v in value.items())) if value else "none"))
        else:
            facts.append((FACT_LABELS.get(key, key), _text(value)))
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
    return [_table("Remediation in this run", [
        ("Before", lambda r: _side(r.get("before"))), ("Action", _get("action")),
        ("Outcome", lambda r: _outcome(r.get("outcome"))), ("After", lambda r: _side(r.get("after"))),
        ("Message", _get("message", "")),
        ("Writes", lambda r: _lines(r.get("writes"))),
    ], items, row_header=False, widths=(15, 15, 14, 15, 19, 22)), *_remediation_extras(items)]


def _remediation_extras(items: list[Mapping[str, Any]]) -> list[Block]:
    """Per-mailbox results and what Exchange said, below the remediation table."""
    blocks: list[Block] = []
    for item in items:
        details = item.get("details")
        if isinstance(details, Mapping):
            if "mailboxes_fixed" in details:
                blocks.append(Facts("Remediation result", [(FACT_LABELS["mailboxes_fixed"],
                                                            _text(details.get("mailboxes_fixed")))]))
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
        ("Started", _timestamp(doc.get("started_at"))),
        ("Finished", _timestamp(doc.get("finished_at")) if doc.get("finished_at") else "not recorded"),
    ]
    if duration := _duration(doc.get("started_at"), doc.get("finished_at")):
        rows.append(("Duration", duration))
    rows += [
        ("Tool", f"{_text(doc.get('tool'), 'mailbox-audit-guard')} {_text(doc.get('tool_version'))}"),
        ("Run id", _text(doc.get("run_id"))),
        ("Command", command),
        ("Trigger", _text(doc.get("trigger"))),
    ]
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

    verdict = Paragraph((Badge(f"Overall status: {_text(doc.get('status'))}",
                               STATUS_TONES.get(str(doc.get("status")), "neutral")),
                         f"Exit code {_text(doc.get('exit_code'))}: "
                         f"{exit_meaning(doc.get('command'), doc.get('exit_code'), doc.get('dry_run'))}."),
                        kind="verdict")
    blocks: list[Block] = [verdict, _run_facts(doc)]
    if isinstance(doc.get("warnings"), list) and doc["warnings"]:
        blocks.append(Bullets("Run warnings", [_text(w) for w in doc["warnings"]]))

    summary = Table("Result per control", ["Control", "Status", "Expected and actual", "Message",
                                           "Framework mappings"], [], total=len(controls), widths=(12, 12, 26, 31, 19))
    for control, anchor in zip(controls, anchors, strict=True):
        message: list[Part] = [_text(control.get("message"), "")]
        if control.get("id") in ("org-audit-enabled", "audit-log-search"):
            message.append(Note(INDEPENDENT_SWITCHES))
        name = Link(_text(control.get("title"), "(untitled control)"), anchor)
        summary.rows.append([(name, Code(_text(control.get("id")))),
                             _status(control.get("status")),
                             Pairs((("Expected", _text(control.get("expected"))),
                                    ("Actual", _text(control.get("actual"))))),
                             tuple(message), _frameworks(control.get("frameworks"))])
    blocks.append(Section(2, "Summary", "summary",
                          [summary] if controls else [Paragraph("This run has no control results.")]))

    details = Section(2, "Details per control", "details")
    for control, anchor in zip(controls, anchors, strict=True):
        control_id = str(control.get("id"))
        section = Section(3, f"{control_id}: {_text(control.get('title'), '(untitled control)')}", anchor,
                          badge=_status(control.get("status")))
        if note := CONTROL_NOTES.get(control_id):
            section.blocks.append(Paragraph(Note(note), kind="note"))
        result = [("Expected", _text(control.get("expected"))), ("Actual", _text(control.get("actual"))),
                  ("Message", _text(control.get("message"), ""))]
        section.blocks += _details_blocks(control_id, control.get("details"), result)
        if steps := [step for step in remediation if str(step.get("control_id")) == control_id]:
            section.blocks += _remediation_blocks(steps)
        details.blocks.append(section)
    known = {str(control.get("id")) for control in controls}
    if others := [step for step in remediation if str(step.get("control_id")) not in known]:
        details.blocks.append(Section(3, "Remediation of controls without a result", _slug("other", taken),
                                      _remediation_blocks(others)))
    if controls or others:
        blocks.append(details)
    return title, blocks


# -------------------------------------------------------------------------------------------------------- Markdown

_MD_ESCAPE = re.compile(r"([\\`*_\[\]<>|~&#!])")
_MD_BLOCK_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_MD_CODE_SAFE = re.compile(r"[A-Za-z0-9 ._:$@/-]+")


# Bidirectional controls (e.g. U+202E) in a mailbox name could make a report show one address as another;
# they are shown as visible escapes instead.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def neutralise_bidi(text: str) -> str:
    return _BIDI_CONTROLS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def md_escape(text: str) -> str:
    """Inline-safe Markdown: punctuation backslash-escaped, pipes escaped, newlines as <br>."""
    return _NEWLINES.sub("<br>", _MD_ESCAPE.sub(r"\\\1", neutralise_bidi(text)))


def _md_block_text(text: str) -> str:
    return _MD_BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), md_escape(text), count=1)


def _md_part(part: Part) -> str:
    if isinstance(part, Badge):
        return f"**{TONE_SYMBOLS[part.tone]} {md_escape(part.text)}**"
    if isinstance(part, Pairs):
        return "<br>".join(f"{md_escape(label)}: {md_escape(value)}" for label, value in part.items)
    if isinstance(part, Note):
        return f"_Note: {md_escape(part.text)}_"
    if isinstance(part, Link):
        return md_escape(part.text)
    if isinstance(part, Code):
        return f"`{part.text}`" if _MD_CODE_SAFE.fullmatch(part.text) else md_escape(part.text)
    return md_escape(part)


def _md_cell(cell: Cell) -> str:
    parts = cell if isinstance(cell, tuple) else (cell,)
    return "<br>".join(_md_part(part) for part in parts if part != "") or " "


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_blocks(blocks: list[Block], out: list[str]) -> None:
    for block in blocks:
        if isinstance(block, Section):
            badge = f" ({_md_part(block.badge)})" if block.badge else ""
            out += ["#" * block.level + " " + md_escape(block.title) + badge, ""]
            _md_blocks(block.blocks, out)
        elif isinstance(block, Paragraph):
            parts = block.text if isinstance(block.text, tuple) else (block.text,)
            text = " ".join(_md_block_text(part) if isinstance(part, str) else _md_part(part) for part in parts)
            out += [("> " if block.kind == "note" else "") + text, ""]
        elif isinstance(block, Bullets):
            out += [f"**{md_escape(block.caption)}**", ""]
            out += [f"- {_md_block_text(item)}" for item in block.items] + [""]
        elif isinstance(block, Facts):
            out += [f"**{md_escape(block.caption)}**", "", _md_row(["Item", "Value"]), _md_row(["---", "---"])]
            out += [_md_row([md_escape(label), _md_cell(value)]) for label, value in block.rows] + [""]
        elif isinstance(block, Table):
            out += [f"**{md_escape(block.caption)}**", "", _md_row(md_escape(c) for c in block.columns),
                    _md_row("---" for _ in block.columns)]
            out += [_md_row(_md_cell(cell) for cell in row) for row in block.rows] + [""]
            if block.total > len(block.rows):
                out += [f"… and {block.total - len(block.rows)} more; the JSON evidence has all.", ""]


def render_markdown(document: dict[str, Any]) -> str:
    """The evidence report as GitHub-flavoured Markdown."""
    title, blocks = build(document)
    out = [f"# {md_escape(title)}", ""]
    _md_blocks(blocks, out)
    out.append(_footer(document))
    return "\n".join(out).rstrip() + "\n"


def _footer(doc: Mapping[str, Any]) -> str:
    return (f"Generated by {_text(doc.get('tool'), 'mailbox-audit-guard')} {_text(doc.get('tool_version'))} from the "
            f"run's JSON evidence (schema {_text(doc.get('schema_version'))}), which is the record; this report "
            "is a rendering of it.")


# ------------------------------------------------------------------------------------------------------------ HTML

_LONG_TOKEN = re.compile(r"\S{41,}")


def _e(text: Any) -> str:
    """Escaped for an attribute value or RCDATA (<title>)."""
    return html.escape(neutralise_bidi(str(text)), quote=True)


def _t(text: Any) -> str:
    """Escaped text content; very long unbroken tokens get break opportunities so tables keep their width."""
    out, last = [], 0
    text = str(text)
    for match in _LONG_TOKEN.finditer(text):
        token = match.group()
        out += [_e(text[last:match.start()]), "<wbr>".join(_e(token[i:i + 20]) for i in range(0, len(token), 20))]
        last = match.end()
    out.append(_e(text[last:]))
    return "".join(out)


def _html_part(part: Part) -> str:
    if isinstance(part, Badge):
        return (f'<span class="badge {part.tone}"><span aria-hidden="true">{TONE_SYMBOLS[part.tone]} </span>'
                f"{_t(part.text)}</span>")
    if isinstance(part, Pairs):
        if part.flow:
            return '<dl class="flow">' + " ".join(f"<div><dt>{_t(label)}</dt> <dd>{_t(value)}</dd></div>"
                                                 for label, value in part.items) + "</dl>"
        return '<dl class="pairs">' + " ".join(f"<dt>{_t(label)}</dt> <dd>{_t(value)}</dd>"
                                               for label, value in part.items) + "</dl>"
    if isinstance(part, Note):
        return f'<p class="note"><strong>Note:</strong> {_t(part.text)}</p>'
    if isinstance(part, Link):
        return f'<a class="line" href="#{_e(part.anchor)}">{_t(part.text)}</a>'
    if isinstance(part, Code):
        return f'<code class="line">{_t(part.text)}</code>'
    return _t(part)


def _html_cell(cell: Cell) -> str:
    if not isinstance(cell, tuple):
        return _html_part(cell)
    return " ".join(_html_part(part) if not isinstance(part, str) else f'<span class="line">{_t(part)}</span>'
                    for part in cell if part != "")


def _html_blocks(blocks: list[Block], out: list[str]) -> None:
    for block in blocks:
        if isinstance(block, Section):
            badge = f" {_html_part(block.badge)}" if block.badge else ""
            cls = "control" if block.level == 3 else "part"
            out.append(f'<section class="{cls}" id="{_e(block.anchor)}" aria-labelledby="{_e(block.anchor)}-h">'
                       f'<h{block.level} id="{_e(block.anchor)}-h">{_t(block.title)}{badge}</h{block.level}>')
            _html_blocks(block.blocks, out)
            out.append("</section>")
        elif isinstance(block, Paragraph):
            if block.kind == "note" and isinstance(block.text, Note):
                out.append(_html_part(block.text))
            else:
                out.append(f'<p class="{block.kind}">{_html_cell(block.text)}</p>')
        elif isinstance(block, Bullets):
            out.append(f'<h4>{_t(block.caption)}</h4><ul class="warnings">'
                       + "".join(f"<li>{_t(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Facts):
            out.append(f'<table class="facts"><caption>{_t(block.caption)}</caption><tbody>'
                       + "".join(f'<tr><th scope="row">{_t(label)}</th><td>{_html_cell(value)}</td></tr>'
                                 for label, value in block.rows) + "</tbody></table>")
        elif isinstance(block, Table):
            head = "".join(f'<th scope="col">{_t(column)}</th>' for column in block.columns)
            rows = []
            for row in block.rows:
                cells = [f'<th scope="row">{_html_cell(cell)}</th>' if i == 0 and block.row_header
                         else f"<td>{_html_cell(cell)}</td>" for i, cell in enumerate(row)]
                rows.append("<tr>" + "".join(cells) + "</tr>")
            cols = ("<colgroup>" + "".join(f'<col style="width:{int(w)}%">' for w in block.widths) + "</colgroup>"
                    if block.widths else "")
            fixed = ' class="fixed"' if block.widths else ""
            out.append(f"<table{fixed}><caption>{_t(block.caption)}</caption>{cols}<thead><tr>{head}</tr></thead>"
                       f"<tbody>{''.join(rows)}</tbody></table>")
            if block.total > len(block.rows):
                out.append(f'<p class="more">… and {block.total - len(block.rows)} more; '
                           "the JSON evidence has all.</p>")


CSS = """
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1240px;padding:24px 28px;color:#1f2328;background:#fff;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans","Liberation Sans",Arial,sans-serif}
h1{font-size:24px;margin:0 0 12px}
h2{font-size:19px;margin:28px 0 10px;padding-bottom:4px;border-bottom:2px solid #d0d7de}
h3{font-size:16px;margin:22px 0 8px}
h4{font-size:14px;margin:14px 0 6px}
section.control~section.control{border-top:1px solid #d0d7de;padding-top:4px}
code{font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono","Liberation Mono",Consolas,monospace;color:#3d444d}
table{border-collapse:collapse;width:100%;margin:6px 0 14px;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0;caption-side:top}
th,td{border:1px solid #d0d7de;padding:5px 7px;text-align:left;vertical-align:top;overflow-wrap:break-word}
thead th{background:#eef1f4}
tbody th{background:#f6f8fa;font-weight:600}
tbody tr:nth-child(even) td{background:#fbfcfd}
table.facts th{width:16em}
.line{display:block}
dl.pairs{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:0 8px;margin:0}
dl.pairs dt{font-weight:600}
dl.pairs dd{margin:0}
dl.flow{margin:0}
dl.flow dt{display:inline;font-weight:600}
dl.flow dd{display:inline;margin:0}
table.fixed{table-layout:fixed}
td .badge,th .badge{font-size:12px}
.badge{display:inline-block;padding:0 7px;border:1px solid;border-radius:4px;font-weight:700;white-space:nowrap}
.ok{background:#dff3e4;color:#14532d;border-color:#1a7f37}
.bad{background:#fde2e1;color:#82071e;border-color:#cf222e}
.err{background:#fff1c2;color:#6b3d00;border-color:#bf8700}
.info{background:#e3edfc;color:#0a3069;border-color:#0969da}
.neutral{background:#eef1f4;color:#1f2328;border-color:#8c959f}
p.verdict{font-size:16px;padding:10px 12px;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa}
p.verdict .badge{font-size:16px;margin-right:8px}
.note{font-size:12.5px;color:#3d444d;margin:6px 0;padding:6px 9px;border-left:4px solid #0969da;background:#f1f6fe}
td .note{margin:6px 0 0}
.more{font-style:italic}
ul.warnings{margin:4px 0 12px;padding-left:22px}
footer{margin-top:28px;padding-top:8px;border-top:1px solid #d0d7de;font-size:12px;color:#57606a}
@page{size:A4 landscape;margin:12mm}
@media print{
 body{max-width:none;padding:0;font-size:10pt}
 table{font-size:9pt}
 td .badge,th .badge{font-size:8pt;padding:0 4px}
 #summary{break-before:page}
 thead{display:table-header-group}
 tr,.badge,.note{break-inside:avoid}
 h2,h3,h4,caption{break-after:avoid}
 a{color:inherit;text-decoration:none}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def render_html(document: dict[str, Any]) -> str:
    """The evidence report as one self-contained HTML file: inline CSS, no scripts, nothing loaded from elsewhere."""
    title, blocks = build(document)
    started = _timestamp(document.get("started_at"))
    out = ['<!DOCTYPE html>', '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<meta name="generator" content="mailbox-audit-guard">',
           f"<title>{_e(title)} · {_e(started)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<header><h1>{_t(title)}</h1></header>", "<main>"]
    _html_blocks(blocks, out)
    out += ["</main>", f"<footer><p>{_t(_footer(document))}</p></footer>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
