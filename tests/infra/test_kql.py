"""Every .kql file under infra/ analysed by the Kusto language service (@kusto/language-service-next 12.4.1, via
tools/kql_check.js) against the Application Insights schema in tools/appinsights-schema.json: syntax, tables,
columns, functions and types. Broken copies prove the validator fails when it should."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra.validators import ALL_QUERIES, INFRA, kql_check

pytestmark = pytest.mark.slow  # each test starts node and the Kusto language service


def compact(text: str) -> str:
    """The query without comments, whitespace collapsed: for structural asserts."""
    return " ".join(re.sub(r"//[^\n]*", "", text).split())


def test_every_query_analyses_without_errors_or_warnings() -> None:
    code, results = kql_check(*ALL_QUERIES)
    assert set(results) == {str(p) for p in ALL_QUERIES}
    problems = [
        f"{Path(r.file).relative_to(INFRA)}:{d['line']}: {d['severity']} {d['code']} {d['message']}"
        for r in results.values()
        for d in r.diagnostics
        if d["severity"] in ("Error", "Warning")
    ]
    assert problems == [], "\n".join(problems)
    assert code == 0


BREAKERS = {
    "unknown-column": lambda q: q.rstrip() + "\n| project no_such_column\n",
    "assignment-not-comparison": lambda q: q.replace("==", "=", 1),
    "unknown-table": lambda q: re.sub(r"\b(customEvents|exceptions)\b", r"\1_typo", q, count=1),
    "syntax": lambda q: q.rstrip() + "\n| where\n",
}


# One query per App Insights table, on columns only that table has: the schema must know all six.
TABLE_PROBES = {
    "customEvents": "customEvents | summarize count() by name, tostring(customMeasurements.duration_seconds)",
    "traces": "traces | where severityLevel >= 2 | project timestamp, message, itemCount",
    "exceptions": "exceptions | project type, outerMessage, innermostMessage, problemId, details",
    "customMetrics": "customMetrics | summarize sum(valueSum), max(valueMax) by name",
    "requests": "requests | where success == 'False' | project url, resultCode, duration, source",
    "dependencies": "dependencies | project target, type, data, duration, resultCode",
}


def test_the_validator_knows_every_table_and_rejects_a_broken_copy_of_every_query(tmp_path: Path) -> None:
    probes = []
    for table, text in TABLE_PROBES.items():
        probes.append(tmp_path / f"probe-{table}.kql")
        probes[-1].write_text(text)
    broken = []
    for query in ALL_QUERIES:
        for name, breaker in BREAKERS.items():
            text = breaker(query.read_text())
            assert text != query.read_text(), f"{name} did not change {query.name}"
            copy = tmp_path / f"{query.stem}.{name}.kql"
            copy.write_text(text)
            broken.append(copy)
    code, results = kql_check(*probes, *broken)
    assert code == 1
    assert len(results) == len(probes) + len(broken)
    rejected = [Path(file).name for file in map(str, probes) if results[file].errors]
    assert rejected == [], f"the App Insights schema lacks a table or column: {rejected}"
    accepted = [Path(file).name for file in map(str, broken) if results[file].errors == 0]
    assert accepted == [], f"the language service accepted broken queries: {accepted}"


def test_heartbeat_returns_a_row_only_when_the_last_completed_check_is_old_or_missing() -> None:
    """Why the query is right (no Kusto engine offline, so this pins the structure that makes it right):

    1. `toscalar(customEvents | where name == "MailboxAuditCheckCompleted" | where trigger == "timer"
       | summarize max(timestamp))` is the newest completed *daily* check in the query range, which the rule
       overrides to P2D (a manual CLI or HTTP run must not hide a timer that stopped). Over zero rows `max()`
       yields one row holding null, so toscalar() is null when no check completed in two days, including "never".
    2. `print` always makes exactly one row; the `where` keeps it only if that value is null or older than 25 h.
    3. So the result has one row (Count 1 > 0: the alert fires) exactly when the last check is older than 25 h or
       absent, and zero rows otherwise. It must not filter on any other dimension (a silent tenant would be
       invisible) and must not summarize per window (the common `Count < 1` over P1D cannot express 25 h).
    """
    query = compact((INFRA / "alerts" / "heartbeat.kql").read_text())
    scalar = re.search(
        r"let (\w+) = toscalar\( customEvents \| where name == \"MailboxAuditCheckCompleted\" "
        r"\| where tostring\(customDimensions\.trigger\) in \(\"timer\", \"queue\"\) "
        r"\| summarize max\(timestamp\)\);",
        query,
    )
    assert scalar, query
    printed = re.search(rf"print (\w+) = {scalar.group(1)} \| where isnull\((\w+)\) or (\w+) < ago\(25h\)", query)
    assert printed and printed.group(1) == printed.group(2) == printed.group(3), query
    assert set(re.findall(r"customDimensions\.(\w+)", query)) == {"trigger"}, "no other dimension may filter"
    tail = query[printed.end() :]
    assert not re.search(r"\| (where|summarize|take|limit|top|distinct)\b", tail), "nothing may drop the row later"


def test_watch_heartbeat_returns_a_row_only_when_the_last_timer_pass_is_old_or_missing() -> None:
    """As the check's heartbeat above, for the activity watch: the newest *timer* MailboxActivityWatchCompleted in
    the query range (the rule overrides it to P1D), one printed row kept only when that is null or older than 1 h."""
    query = compact((INFRA / "alerts" / "watch-heartbeat.kql").read_text())
    scalar = re.search(
        r"let (\w+) = toscalar\( customEvents \| where name == \"MailboxActivityWatchCompleted\" "
        r"\| where tostring\(customDimensions\.trigger\) in \(\"timer\", \"queue\"\) "
        r"\| summarize max\(timestamp\)\);",
        query,
    )
    assert scalar, query
    printed = re.search(rf"print (\w+) = {scalar.group(1)} \| where isnull\((\w+)\) or (\w+) < ago\(1h\)", query)
    assert printed and printed.group(1) == printed.group(2) == printed.group(3), query
    assert set(re.findall(r"customDimensions\.(\w+)", query)) == {"trigger"}, "no other dimension may filter"
    tail = query[printed.end() :]
    assert not re.search(r"\| (where|summarize|take|limit|top|distinct)\b", tail), "nothing may drop the row later"


def test_feed_lag_judges_only_the_newest_pass_of_each_tenant() -> None:
    """A tenant whose newest pass caught up must not alert on an older, lagging pass still in the window."""
    query = compact((INFRA / "alerts" / "feed-lag.kql").read_text())
    newest = query.index("summarize arg_max(timestamp, customDimensions, customMeasurements) by tenant_id")
    threshold = query.index("where feed_lag_minutes > 360")
    assert newest < threshold, "the threshold must apply to the newest pass, after arg_max"
    assert "feed_lag_minutes = todouble(customMeasurements.feed_lag_minutes)" in query


ALERT_FILTERS = {
    "non-compliance": ['name == "MailboxAuditCheckCompleted"', 'tostring(customDimensions.status) == "NonCompliant"'],
    "check-failed": [
        'name == "MailboxAuditCheckCompleted"',
        'tostring(customDimensions.status) == "Error"',
        "exceptions | where isnotempty(tostring(customDimensions.run_id))",
        # a watch pass's exceptions are the watch-failed rule's, not a failed check
        'tostring(customDimensions.command) != "watch" and tostring(customDimensions.run_id) !in (watchRuns)',
    ],
    "activity-alert-high": ['name == "MailboxActivityAlert"', 'tostring(customDimensions.severity) == "high"'],
    "activity-alert-medium": ['name == "MailboxActivityAlert"', 'tostring(customDimensions.severity) == "medium"'],
    "watch-failed": [
        'name == "MailboxActivityWatchCompleted"',
        'tostring(customDimensions.status) == "Error"',
        "exceptions | where isnotempty(tostring(customDimensions.run_id))",
        'tostring(customDimensions.command) == "watch" or tostring(customDimensions.run_id) in (watchRuns)',
        "distinct run_id = tostring(customDimensions.run_id)",
    ],
    "feed-lag": ['name == "MailboxActivityWatchCompleted"', "where feed_lag_minutes > 360"],
    "remediation-applied": [
        'name == "MailboxAuditRemediation"',
        'tostring(customDimensions.outcome) == "Applied"',
        'tostring(customDimensions.command) != "revert"',
    ],
    "remediation-failed": [
        'name == "MailboxAuditRemediation"',
        'tostring(customDimensions.outcome) in ("Failed", "Unverified", "Deferred")',
        'tostring(customDimensions.command) != "revert"',
        # pending outcomes drop out once a later result for that control is Compliant; Failed never does
        'tostring(customDimensions.outcome) == "Failed" or isnull(verified_at) or verified_at < timestamp',
        'tostring(customDimensions.status) == "Compliant"',
    ],
    "revert": [
        'name == "MailboxAuditRemediation"',
        'tostring(customDimensions.command) == "revert"',
        'tostring(customDimensions.outcome) != "DryRun"',
    ],
}


@pytest.mark.parametrize("alert", sorted(ALERT_FILTERS))
def test_alert_queries_filter_on_the_contract(alert: str) -> None:
    query = compact((INFRA / "alerts" / f"{alert}.kql").read_text())
    for clause in ALERT_FILTERS[alert]:
        assert clause in query, f"{alert}.kql lost its filter {clause!r}"
    assert re.search(r"\btenant_id = tostring\(customDimensions\.tenant_id\)", query), "the rule splits by tenant_id"


@pytest.mark.parametrize("alert", ["activity-alert-high", "activity-alert-medium"])
def test_activity_alerts_carry_every_column_the_rule_splits_by_and_the_runbook_reads(alert: str) -> None:
    query = compact((INFRA / "alerts" / f"{alert}.kql").read_text())
    for column in ("tenant_id", "detection", "alert_id", "actor", "mailbox", "operation", "country", "record_time"):
        assert f"{column} = tostring(customDimensions.{column})" in query, f"{alert}.kql lost the column {column}"
    assert "trigger" not in query.split("| where", 1)[1].split("| project")[0], "a manual pass's alerts count too"


def test_the_tenant_grid_has_one_column_per_control_of_the_registry() -> None:
    from shared.controls.registry import IMPLEMENTED_CONTROLS

    query = (INFRA / "workbook" / "tenant-control-grid.kql").read_text()
    columns = re.findall(r"\['([a-z-]+)'\] = take_anyif\(status, control_id == \"([a-z-]+)\"\)", query)
    assert [column for column, _ in columns] == list(IMPLEMENTED_CONTROLS)
    assert all(column == control for column, control in columns)
