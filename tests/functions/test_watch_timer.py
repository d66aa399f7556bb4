"""The activity_watch timer function against the emulator: its state in Table Storage (Azurite), the real exporter
posting its events to the emulated ingestion endpoint, one child process per invocation (harness.py)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from azure.storage.blob import BlobServiceClient

from tests.emulator.support import Exo
from tests.functions.harness import events, exceptions, run_timer
from tests.support.report_tools import DEV_ACCOUNT
from tests.support.tenant import TENANT_ID, scenario

pytestmark = pytest.mark.e2e

TENANT = scenario(mailboxes=[{"Name": "ann", "UserPrincipalName": "ann@contoso.com"}])


@pytest.fixture
def table_storage(azurite, azurite_tables):
    """The app's storage account as in Azure: blobs (the tenant write lock, the evidence) and tables (a fresh watch
    table for the test), on the session's two Azurite services with the same development account."""
    blob_endpoint = f"BlobEndpoint=http://127.0.0.1:{azurite.port}/{DEV_ACCOUNT};"
    return {
        "AzureWebJobsStorage": azurite_tables.connection_string + blob_endpoint,
        "WATCH_TABLE_NAME": f"w{uuid.uuid4().hex[:12]}",
    }


def test_the_timer_catches_tampering_fixes_it_and_resumes_from_its_checkpoint(start_emulator, table_storage):
    emu = start_emulator(TENANT)
    assert run_timer(emu, function="watch", **table_storage).returncode == 0  # subscriptions started
    Exo(emu).ok("Set-OrganizationConfig", {"AuditDisabled": True})
    time.sleep(1.1)
    result = run_timer(emu, function="watch", AUDIT_MODE="remediate", **table_storage)
    assert result.returncode == 0, result.stderr
    assert emu.tenant.organization_config["AuditDisabled"] is False, result.stderr  # back on in the same invocation

    [alert] = events(emu, "MailboxActivityAlert")
    assert (alert["properties"]["detection"], alert["properties"]["trigger"]) == ("audit-tampering", "timer")
    [step] = [e for e in events(emu, "MailboxAuditRemediation") if e["properties"]["control_id"] == "org-audit-enabled"]
    assert (step["properties"]["outcome"], step["properties"]["caller"]) == ("Applied", "timer:activity_watch")
    passes = events(emu, "MailboxActivityWatchCompleted")
    assert [event["properties"]["status"] for event in passes] == ["Clear", "Alerts"]
    assert all(event["properties"]["tenant_id"] == TENANT_ID for event in passes)

    time.sleep(1.1)
    assert run_timer(emu, function="watch", AUDIT_MODE="remediate", **table_storage).returncode == 0
    assert len(events(emu, "MailboxActivityAlert")) == 1  # the same state: nothing reported twice
    last = events(emu, "MailboxActivityWatchCompleted")[-1]
    assert last["properties"]["status"] == "Clear"
    assert last["measurements"]["records_processed"] == 1  # the fix's own record, recorded, not alerted


def test_the_daily_checks_archived_evidence_shows_the_watchs_health_and_alerts(start_emulator, table_storage):
    emu = start_emulator(TENANT)
    storage = {**table_storage, "EVIDENCE_CONTAINER": f"ev{uuid.uuid4().hex[:10]}"}
    assert run_timer(emu, function="watch", **storage).returncode == 0
    Exo(emu).ok("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditEnabled": False})
    time.sleep(1.1)
    assert run_timer(emu, function="watch", **storage).returncode == 0
    [alert] = events(emu, "MailboxActivityAlert")

    result = run_timer(emu, **storage)  # the daily check, in the same storage account
    assert result.returncode == 0, result.stderr
    blobs = BlobServiceClient.from_connection_string(storage["AzureWebJobsStorage"]).get_container_client(
        storage["EVIDENCE_CONTAINER"]
    )
    run_id = events(emu, "MailboxAuditCheckCompleted")[-1]["properties"]["run_id"]  # (the re-check archived too)
    [name] = [blob.name for blob in blobs.list_blobs() if blob.name.endswith(f"{run_id}.json")]
    activity = json.loads(blobs.download_blob(name).readall())["activity"]
    assert activity["source"] == f"table {storage['WATCH_TABLE_NAME']}"
    assert activity["health"] == "OK" and activity["last_pass"]["status"] == "Alerts"
    assert [(a["id"], a["detection"]) for a in activity["alerts"]] == [
        (alert["properties"]["alert_id"], "audit-tampering")
    ]
    html = blobs.download_blob(name.replace(".json", ".html")).readall().decode()
    assert 'id="activity"' in html and "audit-tampering" in html


def test_without_storage_the_timer_is_an_error_pass_with_an_exception(start_emulator):
    emu = start_emulator(TENANT)
    result = run_timer(emu, function="watch")
    assert result.returncode == 0, result.stderr  # the invocation itself does not crash
    [completed] = events(emu, "MailboxActivityWatchCompleted")
    assert completed["properties"]["status"] == "Error"
    assert "AzureWebJobsStorage" in completed["properties"]["error"]
    [exception] = exceptions(emu)
    assert exception["properties"]["run_id"] == completed["properties"]["run_id"]
    assert [r for r in emu.requests if r.listener == "manage"] == []


DEADLINE = 20.0  # the canary's maximum delay here: room for two child processes on a loaded machine


def test_the_daily_timer_writes_the_canary_the_watch_timer_sees_it_and_the_next_daily_run_is_compliant(
    start_emulator, table_storage
):
    canary = {"Name": "canary", "UserPrincipalName": "canary@contoso.com", "RecipientTypeDetails": "SharedMailbox"}
    emu = start_emulator(scenario(mailboxes=[{"Name": "ann", "UserPrincipalName": "ann@contoso.com"}, canary]))
    storage = {
        **table_storage,
        "AUDIT_CANARY_MAILBOX": "canary@contoso.com",
        "AUDIT_CANARY_MAX_DELAY_HOURS": str(DEADLINE / 3600),  # seconds stand in for a day
    }
    assert run_timer(emu, function="watch", **storage).returncode == 0  # subscriptions started
    written = time.monotonic()
    assert run_timer(emu, **storage).returncode == 0  # first daily run: writes a canary, not yet proven
    first = [e for e in events(emu, "MailboxAuditControlResult") if e["properties"]["control_id"] == "audit-pipeline"]
    assert [e["properties"]["status"] for e in first] == ["Error"]
    [write] = [
        call for call in emu.invocations("Set-Mailbox") if "CustomAttribute15" in call.body["CmdletInput"]["Parameters"]
    ]
    assert write.body["CmdletInput"]["Parameters"]["Identity"] == "canary@contoso.com"

    time.sleep(1.1)
    assert run_timer(emu, function="watch", **storage).returncode == 0  # the watch (Table state) sees the record
    assert events(emu, "MailboxActivityAlert") == []  # the product's own canary is no alert
    time.sleep(max(0.0, written + DEADLINE + 1 - time.monotonic()))  # past the canary's deadline: it is decided
    assert run_timer(emu, **storage).returncode == 0
    results = [e for e in events(emu, "MailboxAuditControlResult") if e["properties"]["control_id"] == "audit-pipeline"]
    assert results[-1]["properties"]["status"] == "Compliant", results[-1]
    completed = events(emu, "MailboxAuditCheckCompleted")[-1]  # the latency the workbook tile charts
    assert completed["measurements"]["canary_latency_minutes"] >= 0
