"""`python -m shared search` against the emulated Graph audit log query API: real tokens (msal, the app's secret),
real TLS sockets, the export files on disk. Each test asserts what an investigator gets: the records, the manifest,
the exit code."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator, Fault
from tests.support.cli import cli_env, run_cli
from tests.support.tenant import REPO, scenario

ANN = "ann@contoso.com"
BOB = "bob@contoso.com"
FAST = {"GRAPH_AUDIT_POLL_SECONDS": "0"}
CAN_SEARCH = {"graph_roles": ["AuditLogsQuery.Read.All"]}


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def tenant(audit_search: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    overrides.setdefault("principal", CAN_SEARCH)
    return scenario(audit_search=audit_search or {}, **overrides)


def mailbox_record(name: str, when: str, operation: str = "MailItemsAccessed", **extra: Any) -> dict[str, Any]:
    return {
        "Id": f"{{{{id:{name}}}}}",
        "RecordType": 2,
        "CreationTime": when,
        "Operation": operation,
        "OrganizationId": "{{tenant}}",
        "UserType": 0,
        "UserId": extra.pop("user", ANN),
        "Workload": "Exchange",
        "ClientIP": extra.pop("ip", "198.51.100.7"),
        "MailboxOwnerUPN": extra.pop("mailbox", BOB),
        "ResultStatus": "Succeeded",
        **extra,
    }


def search(emu: Any, out: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    now = datetime.now(UTC)
    window = ["--start", _time(now - timedelta(days=3)), "--end", "now"] if "--start" not in args else []
    return run_cli(emu, "search", *window, *args, "--out", str(out), env={**FAST, **(env or {})})


def manifest_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_complete_export_holds_the_matching_records_and_a_manifest_whose_checksum_matches(tmp_path):
    records = [
        mailbox_record("a", "{{now-2h}}"),
        mailbox_record("b", "{{now-30h}}", operation="Send"),
        mailbox_record("c", "{{now-1h}}", user=BOB),
    ]
    with Emulator(tenant(audit_records=records)) as emu:
        result = search(emu, tmp_path / "case", "--user", ANN, "--json")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "case"
    manifest = manifest_of(out)
    assert json.loads(result.stdout) == manifest
    assert manifest["complete"] is True and manifest["status"] == "complete"
    exported = lines(out)
    assert sorted(r["operation"] for r in exported) == ["MailItemsAccessed", "Send"]
    assert {r["userPrincipalName"] for r in exported} == {ANN}
    (records_file,) = manifest["files"]
    assert records_file["sha256"] == hashlib.sha256((out / "records.jsonl").read_bytes()).hexdigest()
    assert manifest["records"]["written"] == 2
    assert manifest["filters"]["users"] == [ANN]
    assert len(manifest["queries"]) >= 3  # 3 days in 24-hour slices
    assert all(q["query_id"] and q["status"] == "succeeded" for q in manifest["queries"])
    assert result.stderr == ""  # --json: silent


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def dense_tenant(**audit_search: Any) -> tuple[dict[str, Any], datetime]:
    """40 records 36 minutes apart over the middle day of a 3-day window starting at T0; T0 returned."""
    t0 = _whole_seconds(datetime.now(UTC) - timedelta(days=3, minutes=1))
    spec = {"count": 40, "start": _time(t0 + timedelta(days=1)), "end": _time(t0 + timedelta(days=2))}
    return tenant({"record_count_limit": 10, "generate_records": spec, **audit_search}), t0


def test_a_query_over_its_record_limit_is_halved_until_complete_and_boundary_duplicates_are_dropped(tmp_path):
    scenario_, t0 = dense_tenant(inclusive_end=True)  # a record on a slice boundary comes back in both halves
    out = tmp_path / "dense"
    with Emulator(scenario_) as emu:
        result = search(emu, out, "--start", _time(t0), "--end", _time(t0 + timedelta(days=3)))
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(out)
    assert manifest["complete"] is True
    ids = [r["id"] for r in lines(out)]
    assert len(ids) == len(set(ids)) == 40
    assert manifest["records"]["written"] == 40
    assert manifest["records"]["duplicates_skipped"] > 0
    split = [q for q in manifest["queries"] if q["split"]]
    assert split and all(q["record_count_limit_exceeded"] and not q["read"] for q in split)
    assert all(q["records_received"] <= 10 for q in manifest["queries"])
    assert "splitting the window" in result.stderr  # progress says why there are more queries


def test_a_slice_still_over_the_limit_at_the_minimum_size_makes_the_export_incomplete_and_is_named(tmp_path):
    scenario_, t0 = dense_tenant()
    out = tmp_path / "capped"
    with Emulator(scenario_) as emu:
        result = search(
            emu,
            out,
            "--start",
            _time(t0),
            "--end",
            _time(t0 + timedelta(days=3)),
            env={"GRAPH_AUDIT_MIN_SLICE_MINUTES": "720"},  # 12 hours: the middle day splits once, no more
        )
    assert result.returncode == 2
    manifest = manifest_of(out)
    assert manifest["complete"] is False and manifest["status"] == "incomplete"
    assert [(m["start"], m["end"]) for m in manifest["missing"]] == [
        (_time(t0 + timedelta(days=1))[:-1] + ".000Z", _time(t0 + timedelta(days=1, hours=12))[:-1] + ".000Z"),
        (_time(t0 + timedelta(days=1, hours=12))[:-1] + ".000Z", _time(t0 + timedelta(days=2))[:-1] + ".000Z"),
    ]
    assert all("record-count limit" in m["reason"] for m in manifest["missing"])
    assert manifest["records"]["written"] == 20  # what the capped queries did return is kept, as evidence
    assert "MISSING" in result.stdout


def test_throttling_is_waited_out_as_retry_after_says(tmp_path):
    out = tmp_path / "throttled"
    with Emulator(tenant(audit_records=[mailbox_record("a", "{{now-2h}}")])) as emu:
        for operation in ("security-auditCoreRoot-post-auditLogQueries", "security-auditLogQuery-list-records"):
            emu.add_fault(Fault("status", cmdlet=operation, listener="graph", status=429, headers={"Retry-After": "1"}))
        result = search(emu, out)
        posts = [r for r in emu.graph_requests if r.method == "POST"]
        fired = [f.fault.cmdlet for f in emu.fired_faults]
    assert result.returncode == 0, result.stderr
    assert len(fired) == 2
    assert len(posts) == len(manifest_of(out)["queries"]) + 1  # the throttled POST was sent again
    assert [r["id"] for r in lines(out)] and manifest_of(out)["complete"] is True


def test_a_failed_query_is_submitted_once_more(tmp_path):
    out = tmp_path / "retried"
    with Emulator(tenant({"fail_queries": 1}, audit_records=[mailbox_record("a", "{{now-2h}}")])) as emu:
        result = search(emu, out)
    assert result.returncode == 0, result.stderr
    assert manifest_of(out)["queries"][0]["attempts"] == 2


def test_a_query_that_keeps_failing_leaves_its_slice_missing_and_exits_2(tmp_path):
    out = tmp_path / "failed"
    with Emulator(tenant({"fail_queries": 99}, audit_records=[mailbox_record("a", "{{now-2h}}")])) as emu:
        result = search(emu, out)
    assert result.returncode == 2
    manifest = manifest_of(out)
    assert manifest["status"] == "incomplete" and len(manifest["missing"]) == len(manifest["queries"]) >= 3
    assert all("failed" in m["reason"] for m in manifest["missing"])


def test_fewer_records_than_announced_is_not_complete_and_the_window_is_split(tmp_path):
    records = [mailbox_record(str(i), f"{{{{now-{i + 1}h}}}}") for i in range(4)]
    out = tmp_path / "short"
    with Emulator(tenant({"undercount_queries": 1}, audit_records=records)) as emu:
        result = search(emu, out, "--start", _time(datetime.now(UTC) - timedelta(hours=20)), "--end", "now")
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(out)
    first = manifest["queries"][0]
    assert first["split"] and first["records_received"] == first["announced_records"] - 1
    assert manifest["records"]["written"] == 4


def test_without_the_graph_permission_the_message_names_it_and_how_to_grant_it(tmp_path):
    out = tmp_path / "denied"
    with Emulator(tenant(principal={"graph_roles": []})) as emu:
        result = search(emu, out)
    assert result.returncode == 2
    assert "AuditLogsQuery.Read.All" in result.stderr and "grant-permissions" in result.stderr
    assert "--search" in result.stderr
    assert manifest_of(out)["status"] == "error"


def test_a_national_cloud_without_the_api_is_refused_before_anything_is_sent(tmp_path):
    out = tmp_path / "gov"
    with Emulator(tenant()) as emu:
        result = search(emu, out, env={"EXO_CLOUD": "gcchigh"})
        sent = emu.graph_requests
    assert result.returncode == 2
    assert "does not exist in the gcchigh cloud" in result.stderr
    assert sent == [] and not out.exists()


def test_bad_arguments_are_all_named_and_nothing_is_sent(tmp_path):
    out = tmp_path / "bad"
    now = datetime.now(UTC)
    with Emulator(tenant()) as emu:
        result = run_cli(
            emu,
            "search",
            "--start",
            _time(now - timedelta(days=400)),
            "--end",
            _time(now - timedelta(days=401)),
            "--record-type",
            "ExchangeItemz",
            "--ip",
            "300.1.1.1",
            "--out",
            str(out),
            "--json",
        )
        sent = emu.graph_requests + emu.token_requests
    assert result.returncode == 2
    problems = json.loads(result.stdout)["problems"]
    assert any("must be after --start" in p for p in problems)
    assert any("beyond the audit log's retention" in p and "AUDIT_SEARCH_MAX_DAYS" in p for p in problems)
    assert any("'ExchangeItemz' is not an audit log record type" in p for p in problems)
    assert any("'300.1.1.1' is not an IPv4 or IPv6 address" in p for p in problems)
    assert sent == [] and not out.exists()


def test_an_existing_export_is_never_overwritten(tmp_path):
    out = tmp_path / "again"
    with Emulator(tenant(audit_records=[mailbox_record("a", "{{now-2h}}")])) as emu:
        assert search(emu, out).returncode == 0
        before = (out / "manifest.json").read_bytes()
        again = search(emu, out)
    assert again.returncode == 2 and "already holds an export" in again.stderr
    assert (out / "manifest.json").read_bytes() == before


def test_csv_has_the_common_columns_the_raw_record_last_and_mailbox_matches_the_owner(tmp_path):
    records = [
        mailbox_record("to-bob", "{{now-2h}}", mailbox=BOB),
        mailbox_record("to-ann", "{{now-3h}}", mailbox=ANN, operation="=HYPERLINK(1)"),
        mailbox_record("to-ann2", "{{now-4h}}", mailbox=ANN),
    ]
    out = tmp_path / "csv"
    with Emulator(tenant(audit_records=records)) as emu:
        result = search(emu, out, "--mailbox", ANN.upper(), "--format", "csv", env={"GRAPH_AUDIT_API_VERSION": "v1.0"})
        versions = {r.path.split("/")[1] for r in emu.graph_requests}
    assert result.returncode == 0, result.stderr
    assert versions == {"v1.0"}
    import csv

    with open(out / "records.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert header[0] == "id" and header[-1] == "record" and "mailboxOwnerUPN" in header
    assert len(body) == 2 and {row[header.index("mailboxOwnerUPN")] for row in body} == {ANN}
    operations = {row[header.index("operation")] for row in body}
    assert "'=HYPERLINK(1)" in operations  # a formula is defused in the reading column ...
    assert any(json.loads(row[-1])["operation"] == "=HYPERLINK(1)" for row in body)  # ... never in the evidence
    manifest = manifest_of(out)
    assert manifest["records"]["not_matching_mailbox"] == 1
    assert manifest["files"][0]["sha256"] == hashlib.sha256((out / "records.csv").read_bytes()).hexdigest()
    assert hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest() in result.stdout  # the seal to note


@pytest.mark.e2e
@pytest.mark.slow
def test_ctrl_c_leaves_a_manifest_that_says_the_export_was_interrupted(tmp_path):
    records = [mailbox_record(str(i), f"{{{{now-{i + 1}h}}}}") for i in range(3)]
    out = tmp_path / "interrupted"
    with Emulator(tenant({"page_size": 1}, audit_records=records)) as emu:
        # The second page of records takes long: the investigator gives up and presses Ctrl-C.
        emu.add_fault(
            Fault("delay", cmdlet="security-auditLogQuery-list-records", listener="graph", after=1, seconds=30)
        )
        now = datetime.now(UTC)
        child = subprocess.Popen(
            [sys.executable, "-m", "shared", "search", "--start", _time(now - timedelta(hours=20)), "--end", "now"]  # noqa: RUF005
            + ["--out", str(out)],
            cwd=REPO,
            env=cli_env(emu, "secret", FAST),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stderr is not None
            seen = ""
            while "records written so far" not in seen:
                line = child.stderr.readline()
                assert line, f"the search ended before it read anything: {seen}"
                seen += line
            time.sleep(0.5)  # let it send the slow request
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == 2, stderr
    manifest = manifest_of(out)
    assert manifest["interrupted"] is True and manifest["status"] == "interrupted" and not manifest["complete"]
    assert manifest["records"]["written"] == 1
    assert manifest["files"][0]["sha256"] == hashlib.sha256((out / "records.jsonl").read_bytes()).hexdigest()
    assert "Interrupted" in stderr
    assert os.path.getsize(out / "records.jsonl") > 0


def test_a_tenant_whose_audit_log_is_off_is_told_so(tmp_path):
    out = tmp_path / "off"
    with Emulator(tenant(admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False})) as emu:
        result = search(emu, out)
    assert result.returncode == 2
    assert "unified audit log is off" in result.stderr and "audit-log-search" in result.stderr
    assert manifest_of(out)["status"] == "error"
