"""audit-pipeline against the emulated tenant: `check` writes the canary, `watch` sees its ExchangeAdmin record in the
emulated Management Activity feed, `check` judges it. Real tokens, real TLS, one real SQLite state file for both.

Time is the wall clock: AUDIT_CANARY_MAX_DELAY_HOURS takes fractions, so a deadline of a few seconds stands in for
a day, and the emulator's `admin_record_delay_seconds` makes the feed deliver late.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from emulator import Fault
from tests.support.cli import cli_json, run_cli
from tests.support.tenant import scenario

AS_PRODUCT = "managed_identity"
CANARY = {"Name": "canary", "UserPrincipalName": "canary@contoso.com", "RecipientTypeDetails": "SharedMailbox"}
ANN = {"Name": "ann", "UserPrincipalName": "ann@contoso.com"}
DEADLINE_SECONDS = 4.0


def tenant(**feed: Any) -> dict[str, Any]:
    return scenario(mailboxes=[ANN, {**CANARY, "AuditLogAgeLimit": "365.00:00:00"}], activity_feed=feed or None)


def env(**extra: str) -> dict[str, str]:
    return {
        "AUDIT_CANARY_MAILBOX": "canary@contoso.com",
        "AUDIT_CANARY_MAX_DELAY_HOURS": str(DEADLINE_SECONDS / 3600),
        **extra,
    }


def check(emu: Any, state: Path, **extra: str) -> dict[str, Any]:
    result = run_cli(
        emu, "check", "--json", "--control", "audit-pipeline", "--state", str(state), auth_mode=AS_PRODUCT,
        env=env(**extra),
    )  # fmt: skip
    document = cli_json(result)
    [control] = document["controls"]
    return control


def watch(emu: Any, state: Path, **extra: str) -> dict[str, Any]:
    result = run_cli(emu, "watch", "--json", "--state", str(state), auth_mode=AS_PRODUCT, env=env(**extra))
    assert result.returncode in (0, 1), result.stderr
    return cli_json(result)


def settle(seconds: float = 1.1) -> None:
    """Listings take whole seconds (`endTime` has no fraction): a blob of this second is listed from the next."""
    time.sleep(seconds)


def canary_writes(emu: Any) -> list[dict[str, Any]]:
    return [record for record in emu.activity.admin_records if record["Operation"] == "Set-Mailbox"]


def test_check_writes_a_canary_the_watch_sees_it_and_the_next_check_is_compliant(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "watch.sqlite3"
    assert watch(emu, state)["status"] == "Clear"  # subscriptions started
    first = check(emu, state)
    assert (first["status"], first["actual"]) == ("Error", "not yet proven")
    assert "will be judged at" in first["message"]
    [write] = canary_writes(emu)
    value = next(p["Value"] for p in write["Parameters"] if p["Name"] == "CustomAttribute15")
    assert value.startswith("mailbox-audit-guard canary ")
    assert emu.tenant.mailbox("canary")["CustomAttribute15"] == value
    settle()

    seen = watch(emu, state)
    assert seen["status"] == "Clear" and seen["alerts"] == []  # the product's own canary is never an alert
    second = check(emu, state)
    assert second["status"] == "Compliant", second["message"]
    assert "Audit records are arriving" in second["message"] and "min after the write" in second["actual"]
    assert second["details"]["record_id"] == write["Id"]
    assert len(canary_writes(emu)) == 2  # each check writes one canary


def test_a_feed_that_never_delivers_the_canary_is_noncompliant_after_the_deadline(start_emulator, tmp_path):
    emu = start_emulator(tenant(admin_records=False))
    state = tmp_path / "watch.sqlite3"
    watch(emu, state)
    assert check(emu, state)["actual"] == "not yet proven"
    settle(DEADLINE_SECONDS + 1.5)
    assert watch(emu, state)["status"] == "Clear"  # read the feed past the deadline: nothing
    result = check(emu, state)
    assert result["status"] == "NonCompliant"
    assert result["message"].startswith("Audit records are not arriving: the canary written at")
    assert "audit-log-search" in result["message"]


def test_without_a_watch_pass_past_the_deadline_it_is_an_error_not_noncompliant(start_emulator, tmp_path):
    emu = start_emulator(tenant(admin_records=False))
    state = tmp_path / "watch.sqlite3"
    watch(emu, state)
    check(emu, state)
    settle(DEADLINE_SECONDS + 0.5)
    result = check(emu, state)  # nobody read the feed since the canary: nothing can be concluded
    assert (result["status"], result["actual"]) == ("Error", "feed not read")


def test_a_record_delivered_after_the_deadline_is_noncompliant_late(start_emulator, tmp_path):
    emu = start_emulator(tenant(admin_record_delay_seconds=DEADLINE_SECONDS + 2))
    state = tmp_path / "watch.sqlite3"
    watch(emu, state)
    check(emu, state)
    settle(DEADLINE_SECONDS + 3.5)
    watch(emu, state)  # the record arrives now, two seconds after the deadline
    result = check(emu, state)
    assert result["status"] == "NonCompliant", result["message"]
    assert "too late" in result["message"] and result["details"]["latency_minutes"] > DEADLINE_SECONDS / 60


def test_a_record_delivered_just_before_the_deadline_is_compliant(start_emulator, tmp_path):
    emu = start_emulator(tenant(admin_record_delay_seconds=1))
    state = tmp_path / "watch.sqlite3"
    watch(emu, state)
    check(emu, state, AUDIT_CANARY_MAX_DELAY_HOURS=str(8 / 3600))
    settle(2.2)
    watch(emu, state)
    result = check(emu, state, AUDIT_CANARY_MAX_DELAY_HOURS=str(8 / 3600))
    assert result["status"] == "Compliant", result["message"]


def test_a_failing_canary_write_is_an_error_and_never_judged(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "watch.sqlite3"
    watch(emu, state)
    emu.faults.add(Fault("status", cmdlet="Set-Mailbox", status=403, message="Access denied", times=-1))
    result = check(emu, state)
    assert (result["status"], result["actual"]) == ("Error", "canary write failed")
    assert canary_writes(emu) == []
    settle(DEADLINE_SECONDS + 1.5)
    watch(emu, state)
    again = check(emu, state)  # the failed canary is never taken for a lost record
    assert again["actual"] == "canary write failed"


def test_the_audit_property_canary_keeps_retention_and_raises_no_alert(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "watch.sqlite3"
    watch(emu, state)
    check(emu, state, AUDIT_CANARY_WRITE="audit-property")
    limit = emu.tenant.mailbox("canary")["AuditLogAgeLimit"]
    assert limit.startswith("365.") and limit != "365.00:00:00"
    settle()
    seen = watch(emu, state, AUDIT_CANARY_WRITE="audit-property")
    assert seen["alerts"] == [] and seen["rechecks"] == []
    result = check(emu, state, AUDIT_CANARY_WRITE="audit-property")
    assert result["status"] == "Compliant", result["message"]
    retention = run_cli(emu, "check", "--json", "--control", "mailbox-audit-retention", auth_mode=AS_PRODUCT, env=env())
    assert cli_json(retention)["controls"][0]["status"] == "Compliant"


def test_without_a_canary_mailbox_the_control_is_not_run_and_says_why(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    for args in ((), ("--control", "audit-pipeline")):  # left out by default, and also when named
        document = cli_json(run_cli(emu, "check", "--json", *args, auth_mode=AS_PRODUCT))
        assert "audit-pipeline" not in [control["id"] for control in document["controls"]]
        [reason] = [item["reason"] for item in document["not_run"] if item["id"] == "audit-pipeline"]
        assert "AUDIT_CANARY_MAILBOX is not set" in reason
    assert canary_writes(emu) == []


def test_a_dry_run_writes_no_canary_and_says_so(start_emulator, tmp_path):
    emu = start_emulator(tenant())
    state = tmp_path / "watch.sqlite3"
    result = run_cli(
        emu, "remediate", "--dry-run", "--json", "--state", str(state), auth_mode=AS_PRODUCT, env=env()
    )  # fmt: skip
    document = cli_json(result)
    [reason] = [item["reason"] for item in document["not_run"] if item["id"] == "audit-pipeline"]
    assert "dry run writes nothing" in reason
    assert emu.writes() == [] and canary_writes(emu) == []
    # A real remediation still checks (and so writes) the canary: only the dry run is spared.
    run_cli(emu, "remediate", "--json", "--state", str(state), auth_mode=AS_PRODUCT, env=env())
    assert [call.cmdlet for call in emu.invocations() if call.cmdlet == "Set-Mailbox"]
