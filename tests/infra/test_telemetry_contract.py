"""The names the alert and workbook queries depend on are the documented telemetry contract (docs/telemetry.md).

Static half: every event name and `customDimensions.<name>` a query uses is listed in docs/telemetry.md for an event
that query reads. Live half: run the timer function and the CLI against the emulator, capture the telemetry they
really emit and compare it with `query_contract()`. The activity watch's events come from real passes of
`python -m shared watch`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.infra.validators import ALL_QUERIES, INFRA, REPO

DOC = REPO / "docs" / "telemetry.md"
EVENT_NAME = re.compile(r'\bname\s*==\s*"(\w+)"')
DIMENSION = re.compile(r"customDimensions\.(\w+)")
MEASUREMENT = re.compile(r"customMeasurements\.(\w+)")
WATCH_EVENTS = {"MailboxActivityAlert", "MailboxActivityWatchCompleted"}
FANOUT_EVENTS = {"MailboxAuditTenantExpected", "MailboxAuditQueueMessageRejected", "MailboxAuditTenantPoisoned"}


def documented_events() -> dict[str, tuple[set[str], set[str]]]:
    """event name -> (customDimensions, customMeasurements) from the customEvents table in docs/telemetry.md."""
    events = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and (match := re.fullmatch(r"`(\w+)`", cells[0])):
            events[match.group(1)] = (set(re.findall(r"`(\w+)`", cells[2])), set(re.findall(r"`(\w+)`", cells[3])))
    return events


def documented_exception_dimensions() -> set[str]:
    """From the first bullet that says what goes out `as `exceptions``, with its continuation lines."""
    bullet = re.search(r"^- [^\n]*as `exceptions`[^\n]*(?:\n  [^\n]*)*", DOC.read_text(), re.M)
    assert bullet, "docs/telemetry.md no longer says what goes out as exceptions"
    pairs = re.findall(r"customDimensions\.(\w+)`|\(and `(\w+)`\)", bullet.group(0))
    return {name for pair in pairs for name in pair if name}


def query_contract(path: Path) -> tuple[set[str], set[str], set[str]]:
    """(event names, customDimensions, customMeasurements) one query uses, comments ignored."""
    text = re.sub(r"//[^\n]*", "", path.read_text())
    return set(EVENT_NAME.findall(text)), set(DIMENSION.findall(text)), set(MEASUREMENT.findall(text))


def test_the_contract_table_was_read() -> None:
    events = documented_events()
    assert set(events) == {
        "MailboxAuditCheckCompleted",
        "MailboxAuditControlResult",
        "MailboxAuditRemediation",
        *WATCH_EVENTS,
        *FANOUT_EVENTS,
    }
    assert {"run_id", "tenant_id", "status", "command"} <= events["MailboxAuditCheckCompleted"][0]
    assert documented_exception_dimensions() == {"run_id", "tenant_id", "command"}


def test_the_watch_contract_is_the_one_the_issue_names() -> None:
    """The names the other half of the watch (the pass and its emitters) is written against: change both together."""
    events = documented_events()
    assert events["MailboxActivityAlert"] == (
        {
            "run_id",
            "tenant_id",
            "tenant_name",
            "alert_id",
            "detection",
            "severity",
            "actor",
            "mailbox",
            "operation",
            "country",
            "record_time",
            "trigger",
        },
        set(),
    )
    dimensions, measurements = events["MailboxActivityWatchCompleted"]
    assert dimensions == {"run_id", "tenant_id", "tenant_name", "status", "trigger", "tool_version", "error"}
    assert measurements == {
        "records_processed",
        "records_duplicate",
        "records_unparsed",
        "content_blobs",
        "failed_blobs",
        "alerts",
        "gaps",
        "feed_lag_minutes",
        "duration_seconds",
    }


@pytest.mark.parametrize("query", ALL_QUERIES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_query_uses_only_documented_events_and_dimensions(query: Path) -> None:
    events = documented_events()
    names, dimensions, measurements = query_contract(query)
    assert names, f"{query.name} reads no named event"
    assert names <= set(events), f"undocumented events: {names - set(events)}"
    allowed_dimensions = set().union(*(events[name][0] for name in names))
    if re.search(r"\bexceptions\b", query.read_text()):
        allowed_dimensions |= documented_exception_dimensions()
    assert dimensions <= allowed_dimensions, f"undocumented for {sorted(names)}: {dimensions - allowed_dimensions}"
    allowed_measurements = set().union(*(events[name][1] for name in names))
    assert measurements <= allowed_measurements, f"undocumented: {measurements - allowed_measurements}"


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Event or table name -> every customDimensions key the app really sent, over runs that exercise each rule:
    a non-compliant timer run that remediates, a run that cannot start (exception), an unverified and a failed
    remediation, a CLI revert, and activity-watch passes (one catching a tampering write, one that cannot start),
    all through the real exporter into the emulator's ingestion endpoint."""
    from emulator import Emulator, Fault
    from tests.emulator.support import Exo
    from tests.functions.harness import function_env, run_timer
    from tests.support.cli import run_cli
    from tests.support.tenant import TENANT_ID, scenario

    seen: dict[str, set[str]] = {}
    values: dict[str, set[str]] = {}

    def collect(emu: Emulator) -> None:
        for envelope in emu.telemetry:
            data = envelope.get("data", {})
            base = data.get("baseData", {})
            key = base.get("name") if data.get("baseType") == "EventData" else data.get("baseType")
            props = base.get("properties", {})
            seen.setdefault(key, set()).update(props)
            for name in ("status", "outcome", "command", "severity", "trigger"):
                if name in props:
                    values.setdefault(f"{key}.{name}", set()).add(props[name])

    with Emulator(scenario(organization_config={"AuditDisabled": True})) as emu:
        run_timer(emu, AUDIT_MODE="remediate")
        run_timer(emu, EXO_TENANT_ID="not-a-guid")
        emu.add_fault(Fault("ignore_writes", cmdlet="Set-OrganizationConfig", times=-1))
        with emu.lock:
            emu.tenant.organization_config["AuditDisabled"] = True
        run_timer(emu, AUDIT_MODE="remediate", REMEDIATION_VERIFY_SECONDS="0")  # Unverified
        emu.clear_faults()
        emu.add_fault(Fault("status", cmdlet="Set-OrganizationConfig", status=400, times=-1))
        run_timer(emu, AUDIT_MODE="remediate")  # Failed
        emu.clear_faults()
        with emu.lock:
            emu.tenant.organization_config["AuditDisabled"] = False
        env = function_env(emu, auth_mode="secret")
        run_cli(
            emu,
            "revert",
            "--confirm",
            TENANT_ID,
            env={
                "APPLICATIONINSIGHTS_CONNECTION_STRING": env["APPLICATIONINSIGHTS_CONNECTION_STRING"],
                **{k: v for k, v in env.items() if k.startswith(("APPLICATIONINSIGHTS_", "OTEL_", "TELEMETRY_"))},
            },
            keep_telemetry=True,
        )
        telemetry_env = {k: v for k, v in env.items() if k.startswith(("APPLICATIONINSIGHTS_", "OTEL_", "TELEMETRY_"))}
        state = tmp_path_factory.mktemp("watch") / "watch.sqlite3"
        watch = ("watch", "--state", str(state))
        run_cli(emu, *watch, env=telemetry_env, keep_telemetry=True)  # the revert above is alerted: our own switch-off
        Exo(emu).ok("Set-OrganizationConfig", {"AuditDisabled": True})
        time.sleep(1.1)  # listings take whole seconds
        run_cli(emu, *watch, env=telemetry_env, keep_telemetry=True)  # an alert, and its re-check
        run_cli(emu, *watch, env={**telemetry_env, "WATCH_CONTENT_TYPES": "bogus"}, keep_telemetry=True)  # Error
        fan_out(emu, env, tmp_path_factory.mktemp("tenants") / "tenants.json")
        collect(emu)
    seen["_values"] = {f"{k}={v}" for k, vs in values.items() for v in vs}
    return seen


FAN_OUT = """
from shared.runtime import fanout
messages = fanout.dispatch("check")
fanout.run_message("check", messages[0], 1)
fanout.run_message("check", "not json", 1)
try:
    fanout.run_message("check", messages[1], fanout.MAX_DEQUEUE_COUNT)
except fanout.TenantRunFailed:
    pass
else:
    raise SystemExit("the refused tenant's last delivery did not fail")
"""


def fan_out(emu: object, env: dict[str, str], register: Path) -> None:
    """The many-tenant fan-out in a child process (the exporter's globals are per process): a dispatch, a tenant's
    queue run, a bad message, and the last delivery of a tenant whose sign-in is refused (poisoned)."""
    import json
    import subprocess
    import sys

    from tests.support.tenant import TENANT_ID

    register.write_text(
        json.dumps(
            [
                {"tenant_id": TENANT_ID, "organization": "contoso.onmicrosoft.com", "display_name": "Contoso"},
                {"tenant_id": "99999999-9999-9999-9999-999999999999", "organization": "fabrikam.onmicrosoft.com"},
            ]
        )
    )
    child_env = {**env, "AUDIT_TENANTS_FILE": str(register)}
    child_env.pop("AzureWebJobsStorage", None)  # no evidence archive here
    result = subprocess.run(
        [sys.executable, "-c", FAN_OUT],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("query", ALL_QUERIES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_live_contract_queries_match_emitted_telemetry(query: Path, emitted: dict[str, set[str]]) -> None:
    """Every event and dimension a query reads is one the app really sends."""
    names, dimensions, _ = query_contract(query)
    assert names <= set(emitted), f"never emitted: {names - set(emitted)}"
    sent = set().union(*(emitted[name] for name in names))
    if re.search(r"\bexceptions\b", query.read_text()):
        sent |= emitted.get("ExceptionData", set())
    assert dimensions <= sent, f"{query.name} reads dimensions the app never sends: {dimensions - sent}"


@pytest.mark.e2e
def test_the_values_alerts_filter_on_are_really_sent(emitted: dict[str, set[str]]) -> None:
    values = emitted["_values"]
    for expected in (
        "MailboxAuditCheckCompleted.status=NonCompliant",
        "MailboxAuditCheckCompleted.status=Error",
        "MailboxAuditRemediation.outcome=Applied",
        "MailboxAuditRemediation.outcome=Failed",
        "MailboxAuditRemediation.outcome=Unverified",
        "MailboxAuditRemediation.command=revert",
        "MailboxAuditRemediation.command=remediate",
        "MailboxActivityWatchCompleted.status=Alerts",
        "MailboxActivityWatchCompleted.status=Error",
    ):
        assert expected in values
    assert "run_id" in emitted["ExceptionData"]


@pytest.mark.e2e
def test_the_values_the_watch_rules_filter_on_are_really_sent(emitted: dict[str, set[str]]) -> None:
    values = emitted["_values"]
    for expected in (
        "MailboxActivityWatchCompleted.status=Error",
        "MailboxActivityWatchCompleted.status=Alerts",
        "MailboxActivityWatchCompleted.trigger=cli",
        "MailboxActivityAlert.severity=high",
    ):
        assert expected in values
