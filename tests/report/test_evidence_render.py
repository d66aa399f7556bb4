"""The evidence report renderers (shared.evidence) on realistic documents built by run_document."""

from __future__ import annotations

import copy
import re
from datetime import timedelta, timezone
from typing import Any

import pytest

from shared.evidence.html import render_html
from shared.evidence.layout import MAX_ROWS, exit_meaning
from shared.evidence.markdown import render_markdown
from tests.report.documents import (
    HOSTILE,
    LICENCE_ERROR,
    MANY,
    STARTED,
    activity_document,
    check_document,
    remediate_document,
)
from tests.report.htmlcheck import parse, table

DOCUMENTS = {"check": check_document, "remediate": remediate_document, "activity": activity_document}
CONTROL_IDS = (
    "org-audit-enabled",
    "audit-log-search",
    "audit-bypass",
    "mailbox-audit-actions",
    "mailbox-audit-retention",
)


@pytest.fixture(scope="module", params=sorted(DOCUMENTS))
def rendered(request: pytest.FixtureRequest) -> tuple[dict[str, Any], str, str]:
    document = DOCUMENTS[request.param]()
    return document, render_html(document), render_markdown(document)


@pytest.fixture(scope="module")
def check() -> tuple[dict[str, Any], Any, str]:
    document = check_document()
    return document, parse(render_html(document)), render_markdown(document)


@pytest.fixture(scope="module")
def remediate() -> tuple[dict[str, Any], Any, str]:
    document = remediate_document()
    return document, parse(render_html(document)), render_markdown(document)


# ---------------------------------------------------------------------------------------------------------- HTML


def test_html_is_well_formed_and_accessible(rendered):
    _, html, _ = rendered
    assert html.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert '<meta charset="utf-8">' in html[:1024]
    page = parse(html)
    assert page.problems == []
    assert page.doctype == "DOCTYPE html"
    tags = [tag for tag, _ in page.elements]
    assert tags.count("h1") == 1 and tags.count("title") == 1 and tags.count("main") == 1
    assert len(page.ids) == len(set(page.ids)), "ids must be unique"
    assert all(t.caption for t in page.tables), "every table has a caption"
    for _, attributes in page.elements:
        if "aria-labelledby" in attributes:
            assert attributes["aria-labelledby"] in page.ids


def test_html_is_self_contained(rendered):
    _, html, _ = rendered
    page = parse(html)
    for tag, attributes in page.elements:
        assert "src" not in attributes
        assert not any(name.startswith("on") for name in attributes)
        if "href" in attributes:
            target = str(attributes["href"])
            assert target.startswith("#") and target[1:] in page.ids, target
        if "style" in attributes:
            assert tag == "col" and re.fullmatch(r"width:\d+%", str(attributes["style"]))
    lowered = html.lower()
    for forbidden in (
        "<script",
        "<link",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        "url(",
        "@import",
        "@font-face",
        "http://",
        "https://",
        "javascript:",
    ):
        assert forbidden not in lowered, forbidden


def test_html_escapes_hostile_names_and_messages(remediate, check):
    for document, page, _ in (check, remediate):
        html = render_html(document)
        assert "<script>alert" not in html and "<b>co</b>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; O&#x27;Brien" in html
        text = "".join(page.text)
        assert '<script>alert("pwned")</script> O\'Brien | "Bob" & <b>co</b>' in text  # shown as text, verbatim
    _, page, _ = remediate
    assert LICENCE_ERROR in table(page, "Mailboxes that could not be fixed").rows[0][1]


def test_html_header_has_the_run_facts(remediate):
    document, page, _ = remediate
    run = {row[0]: row[1] for row in table(page, "Run").rows}
    assert run["Tenant"] == document["tenant_id"]
    assert run["Organisation"] == "contoso.onmicrosoft.com"
    assert run["Started"] == "2026-11-28 06:00:01 UTC" and run["Finished"] == "2026-11-28 06:01:36 UTC"
    assert run["Tool"] == f"mailbox-audit-guard {document['tool_version']}"
    assert run["Run id"] == document["run_id"]
    assert run["Command"] == "remediate" and run["Trigger"] == "http"
    assert run["Caller"] == "Admin 'Alice' <alice@contoso.com> (oid 9a8b7c6d)"
    assert run["Controls not compliant"] == "mailbox-audit-actions"
    verdict = "".join(page.text)
    assert "Overall status: NonCompliant" in verdict
    assert "Exit code 1: non-compliant: at least one control does not meet its expected value" in verdict


def test_html_summary_has_every_control_with_status_values_and_mappings(check):
    document, page, _ = check
    summary = table(page, "Result per control")
    assert summary.head == ["Control", "Status", "Expected and actual", "Message", "Framework mappings"]
    assert [row[0].split()[-1] for row in summary.rows] == list(CONTROL_IDS)
    by_id = {row[0].split()[-1]: row for row in summary.rows}
    for control in document["controls"]:
        row = by_id[control["id"]]
        assert control["status"] in row[1]
        assert control["expected"] in row[2] and control["actual"] in row[2]
        assert control["message"] in row[3]
    assert "CIS v7 6.1.3" in by_id["audit-bypass"][4] and "CIS v4 6.1.4" in by_id["audit-bypass"][4]
    for reference in (
        "CISA SCuBA MS.EXO.13.1v1",
        "ISO 27001:2022 A.8.15",
        "ISO 27001:2013 A.12.4.1",
        "BIO 12.4.1",
        "NIS2 art. 21",
        "AVG/GDPR art. 32",
    ):
        assert reference in by_id["org-audit-enabled"][4]


def test_html_says_the_two_switches_are_independent_next_to_both(check):
    _, page, _ = check
    rows = {row[0].split()[-1]: row for row in table(page, "Result per control").rows}
    for control_id in ("org-audit-enabled", "audit-log-search"):
        assert "independent switches" in rows[control_id][3]
    assert "independent switches" not in rows["audit-bypass"][3]


def test_status_is_never_colour_alone(check):
    _, page, _ = check
    assert page.badges, "statuses are badges"
    for badge in page.badges:
        assert re.search(
            r"(Compliant|NonCompliant|Error|Applied|AlreadyCompliant|DryRun|Unverified|Deferred|Failed)$", badge
        ), badge
    assert "✗ NonCompliant" in page.badges and "✓ Compliant" in page.badges


def test_html_details_findings_exceptions_and_warnings(check):
    _, page, _ = check
    bypass = "control-audit-bypass"
    findings = table(page, "Findings", bypass)
    assert findings.head == ["Identity", "Name", "Guid"] and len(findings.rows) == 2
    used = table(page, "Exceptions used", bypass)
    assert used.rows == [["journaling@contoso.com", "Vendor journaling | archive", "CISO (change 4711)", "2027-03-31"]]
    rejected = table(page, "Exceptions rejected", bypass)
    assert rejected.rows[0][1] == "expired on 2025-01-31" and "old-scanner@contoso.com" in rejected.rows[0][0]
    values = {row[0]: row[1] for row in table(page, "Result and values read", bypass).rows}
    assert values["Bypass associations read"] == "1204"

    ual = {row[0]: row[1] for row in table(page, "Result and values read", "control-audit-log-search").rows}
    assert ual["UnifiedAuditLogIngestionEnabled (audit log search)"] == "False"
    assert ual["AdminAuditLogAgeLimit (context only)"] == "90.00:00:00"

    retention = table(page, "Findings", "control-mailbox-audit-retention")
    assert retention.rows[0][:5] == [
        "ceo@contoso.com",
        "UserMailbox",
        "00:00:00",
        "0",
        "Yes: limit is zero, records purged",
    ]
    assert retention.rows[2][3] == "unknown"
    assert "answered slowly" in "".join(page.text)


def test_long_finding_lists_are_capped_and_say_so(check):
    document, page, markdown = check
    actions = table(page, "Findings", "control-mailbox-audit-actions")
    assert actions.caption == f"Findings ({MANY})"
    assert len(actions.rows) == MAX_ROWS
    first = actions.rows[0]
    assert first[2] == "unknown" and "Admin MailItemsAccessed" in first[3] and first[4] == "Owner"
    note = f"… and {MANY - MAX_ROWS} more; the JSON evidence has all."
    assert note in "".join(page.text) and note in markdown
    assert len(document["controls"][3]["details"]["findings"]) == MANY  # the document itself is untouched


def test_html_remediation_history(remediate):
    _, page, _ = remediate
    ual = table(page, "Remediation in this run", "control-audit-log-search")
    assert ual.head == ["Before", "Action", "Outcome", "After", "Message", "Writes"]
    before, action, outcome, after, message, writes = ual.rows[0]
    assert before.startswith("✗ NonCompliant") and "UnifiedAuditLogIngestionEnabled = False" in before
    assert action == "Set-AdminAuditLogConfig -UnifiedAuditLogIngestionEnabled $true"
    assert outcome == "✓ Applied" and after.startswith("✓ Compliant")
    assert message == "Applied and verified by reading back."
    assert writes.startswith("Enable-OrganizationCustomization")
    org = table(page, "Remediation in this run", "control-org-audit-enabled").rows[0]
    assert org[2] == "✓ AlreadyCompliant" and org[3] == "not read back" and org[5] == "none"
    actions = table(page, "Remediation in this run", "control-mailbox-audit-actions").rows[0]
    assert actions[2] == "⚠ Failed" and "… and 29 more; the JSON evidence has all" in actions[5]
    assert table(page, "Remediation result").rows == [["Mailboxes fixed", "39"]]


# ------------------------------------------------------------------------------------------------------ Markdown


def markdown_tables(markdown: str) -> list[list[list[str]]]:
    """Every GFM table as rows of cells, split on pipes that are not escaped."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in markdown.split("\n"):
        if line.startswith("|"):
            assert line.endswith("|") and not line.endswith("\\|"), f"table line does not end with a pipe: {line!r}"
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])]
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        else:
            current = None
    return tables


def test_markdown_tables_have_consistent_columns(rendered):
    _, _, markdown = rendered
    tables = markdown_tables(markdown)
    assert len(tables) >= 10
    for rows in tables:
        width = len(rows[0])
        assert all(set(cell) <= {"-"} and cell for cell in rows[1]), "second line is the delimiter row"
        for row in rows:
            assert len(row) == width, row


def test_markdown_escapes_markup_pipes_and_newlines(rendered):
    _, _, markdown = rendered
    assert not re.search(r"(?<!\\)<(?!br>)", markdown), "every < except our own <br> is escaped"
    assert (
        '\\<script\\>alert("pwned")\\</script\\> O\'Brien \\| "Bob" \\& \\<b\\>co\\</b\\><br>second \\| line'
        in markdown
    )
    assert "second | line" not in markdown


def test_markdown_and_html_carry_the_same_tables(rendered):
    _, html, markdown = rendered
    page = parse(html)
    md_captions = re.findall(r"^\*\*(.+)\*\*\n\n\|", markdown, flags=re.M)
    assert [caption.replace("\\", "") for caption in md_captions] == [t.caption for t in page.tables]
    md_tables = markdown_tables(markdown)
    for html_table, md_table in zip(page.tables, md_tables, strict=True):
        assert len(md_table) - 2 == len(html_table.rows)  # minus the header and delimiter rows


def test_markdown_content(check):
    document, _, markdown = check
    assert markdown.startswith("# Mailbox audit evidence: contoso.onmicrosoft.com\n")
    assert "**✗ Overall status: NonCompliant** Exit code 1: non-compliant" in markdown
    assert f"| Run id | {document['run_id']} |" in markdown
    assert "| Started | 2026-11-28 06:00:01 UTC |" in markdown
    for control_id in CONTROL_IDS:
        assert f"### {control_id}: " in markdown
    assert "`audit-log-search`" in markdown
    assert "CIS v7: 6.1.3<br>CIS v4: 6.1.4" in markdown
    assert markdown.count("independent switches") >= 4  # summary rows and detail notes of both switches


# ------------------------------------------------------------------------------------------------ robustness


BROKEN: dict[str, dict[str, Any]] = {
    "empty": {},
    "no controls": {"status": "Error", "exit_code": 2, "command": "check", "controls": []},
    "odd values": {
        "status": "Weird",
        "exit_code": 7,
        "dry_run": "yes",
        "started_at": "not a date",
        "finished_at": 5,
        "controls": [
            {"id": "x|y", "details": "free text"},
            "not a dict",
            {
                "id": "audit-bypass",
                "frameworks": None,
                "details": {
                    "findings": "not a list",
                    "exceptions_used": [1, 2],
                    "custom": [{"a": 1}, {"b": [1, 2]}],
                    "nested": {"k": None},
                    "warnings": "not a list",
                },
            },
        ],
        "remediation": [
            {"control_id": "gone", "before": None, "after": {}, "writes": None},
            {"control_id": "audit-bypass", "details": {"mailboxes_failed": "x"}},
        ],
        "warnings": [None, 3],
    },
    "naive time": {"started_at": "2026-11-28T06:00:00", "controls": [{"id": "org-audit-enabled"}]},
    "unhashable": {
        "status": {"a": 1},
        "exit_code": [1],
        "command": ["check"],
        "tool_version": None,
        "controls": [{"id": ["x"], "status": ["Compliant"], "details": {"baseline": ["cis"]}}],
        "remediation": [{"control_id": {"x": 1}, "outcome": [], "before": {"status": {}}}],
    },
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_renderers_tolerate_missing_and_odd_keys(name):
    document = copy.deepcopy(BROKEN[name])
    html, markdown = render_html(document), render_markdown(document)
    assert parse(html).problems == []
    assert document == BROKEN[name], "renderers do not modify their input"
    for rows in markdown_tables(markdown):
        assert {len(row) for row in rows} == {len(rows[0])}
    assert "unknown" in html or "Weird" in html


def test_renderers_are_pure_and_deterministic():
    document = check_document()
    assert render_html(document) == render_html(copy.deepcopy(document))
    assert render_markdown(document) == render_markdown(document)


@pytest.mark.parametrize(
    ("command", "code", "meaning"),
    [
        ("check", 0, "compliant: every control"),
        ("check", 2, "compliance is unknown (fail closed)"),
        ("remediate", 1, "as read back after the remediation"),
        ("revert", 0, "revert was applied and verified"),
        ("revert", 2, "revert was not applied"),
        ("check", 9, "not a documented exit code"),
        ("check", True, "not a documented exit code"),
    ],
)
def test_exit_code_meaning(command, code, meaning):
    assert meaning in exit_meaning(command, code)


def test_a_dry_run_says_nothing_was_written():
    document = remediate_document() | {"dry_run": True}
    markdown = render_markdown(document)
    assert "| Command | remediate (dry run: nothing was written) |" in markdown
    assert "(dry run: the state as found, nothing was written)" in markdown


def test_times_are_shown_in_utc():
    document = check_document()
    document["started_at"] = STARTED.astimezone(timezone(timedelta(hours=2))).isoformat()  # 08:00:01+02:00
    assert "| Started | 2026-11-28 06:00:01 UTC |" in render_markdown(document)


def test_keys_the_renderer_does_not_know_still_get_a_column():
    document = check_document()
    document["controls"][2]["details"]["findings"][0]["default_audit_set"] = ["Admin", "Delegate"]
    page = parse(render_html(document))
    findings = table(page, "Findings", "control-audit-bypass")
    assert findings.head == ["Identity", "Name", "Guid", "default_audit_set"]
    assert findings.rows[0][3] == "Admin, Delegate" and findings.rows[1][3] == ""


def test_bidirectional_controls_in_names_are_shown_as_escapes_not_obeyed():
    """U+202E would make "eve@contoso.com" display as another address in a browser or a Markdown viewer."""
    from shared.evidence.html import render_html
    from shared.evidence.markdown import render_markdown
    from tests.report.documents import check_document

    document = check_document()
    bypass = next(c for c in document["controls"] if c["id"] == "audit-bypass")
    bypass["details"]["findings"][0]["identity"] = "svc\u202emoc.osotnoc@eve"
    for rendered in (render_html(document), render_markdown(document)):
        assert "\u202e" not in rendered
        assert "u202e" in rendered


def test_pending_outcomes_have_their_own_badge_note_and_recorded_times():
    document = copy.deepcopy(remediate_document())
    deferred, unverified = document["remediation"][0], document["remediation"][1]
    deferred["outcome"] = "Deferred"
    deferred["details"] = {
        "deferred_at": "2026-10-01T06:00:05+00:00",
        "reason": "customisation propagating, up to 60 min",
        "customisation_enabled_at": "2026-10-01T06:00:00+00:00",
        "retry_after": "2026-10-01T07:00:00+00:00",
    }
    unverified["outcome"] = "Unverified"
    unverified["details"] = {"verify_seconds": 120.0, "read_backs": 5}
    page = parse(render_html(document))
    assert "◐ Deferred" in page.badges and "◐ Unverified" in page.badges  # a symbol and a word, not colour alone
    assert "✓ Deferred" not in page.badges and "⚠ Unverified" not in page.badges  # neither ok nor err
    times = dict(map(tuple, table(page, f"Deferred: {deferred['control_id']}").rows))
    assert times["Enable-OrganizationCustomization succeeded at"] == "2026-10-01 06:00:00 UTC"
    assert times["Organisation-wide writes expected to work from"] == "2026-10-01 07:00:00 UTC"
    assert dict(map(tuple, table(page, f"Unverified: {unverified['control_id']}").rows))["Read-backs"] == "5"
    markdown = render_markdown(document)
    assert "**◐ Deferred**" in markdown and "the next run reads again" in markdown


# ------------------------------------------------------------------------------------------------ activity watch


def activity_html() -> Any:
    return parse(render_html(activity_document()))


def test_the_activity_section_shows_feed_health_with_its_reasons():
    document = activity_document()
    markdown = render_markdown(document)
    section = markdown[markdown.index("## Activity watch") :]
    assert section.startswith("## Activity watch (**✗ Feed health: Attention**)")  # symbol and word, not colour
    assert "- the last watch pass failed: the feed answered 503" in section
    assert "1 content blob(s) could not be read yet" in section
    assert "| Last pass status | **⚠ Error** |" in section
    assert "| Feed lag (minutes) | 31 |" in section
    assert "| `Audit.AzureActiveDirectory` | not read yet | not recorded |" in section
    assert "the watch did not run for more than 7 days" in section
    assert "| Audit.Exchange | blob$1 | 1 | HTTP 500 \\<b\\> |" in section


def test_the_activity_section_lists_every_recent_alert_newest_event_first():
    document = activity_document()
    page = activity_html()
    [alerts] = [t for t in page.tables if t.caption.startswith("Alerts raised in the last 7 days")]
    assert len(alerts.rows) == len(document["activity"]["alerts"]) == 8
    times = [row[0] for row in alerts.rows]
    assert times == sorted(times, reverse=True)
    assert all("mail-forwarding:" in row[-1] for row in alerts.rows)  # the alert id, to find it in telemetry
    assert any(row[3].endswith("Mailbox none") for row in alerts.rows)
    assert any(row[4].endswith("From [2a01:111:f400::1]:443") for row in alerts.rows)  # no country: none made up
    assert "<script>" not in render_html(document).split('id="activity"')[1]  # hostile alert text is escaped
    assert HOSTILE.splitlines()[0] in "\n".join(row[-1] for row in alerts.rows)  # ... and shown as text


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        ({"error": "the activity watch's state could not be read: HTTP 403", "health": "Error"}, "HTTP 403"),
        (
            {"health": "Unknown", "health_reasons": ["no watch pass is recorded"], "alerts_total": 0, "alerts": []},
            "No alert was raised in the last 7 days.",
        ),
    ],
)
def test_an_unreadable_or_empty_state_says_so(activity, expected):
    document = check_document()
    document["activity"] = activity
    for text in (render_markdown(document), render_html(document)):
        assert f"Feed health: {activity['health']}" in text
        assert expected in text


def test_a_report_without_a_watch_state_has_no_activity_section():
    assert "Activity watch" not in render_markdown(check_document())


def test_the_run_facts_state_the_permission_model_in_html_and_markdown(check):
    document = copy.deepcopy(check[0])
    document["permission_model"] = {
        "model": "role-group",
        "description": "Exchange RBAC role groups (least privilege)",
        "declared_by": "EXO_PERMISSION_MODEL",
    }
    run = {row[0]: row[1] for row in table(parse(render_html(document)), "Run").rows}
    assert run["Permission model"] == "Exchange RBAC role groups (least privilege) (declared by EXO_PERMISSION_MODEL)"
    assert "Permission model" in render_markdown(document)
    assert "Permission model" not in render_markdown(check[0])  # an older document without it renders as before
