"""Every function run leaves its evidence (JSON, HTML, Markdown) in the app's storage account, write-once."""

from __future__ import annotations

import json

import pytest
from azure.storage.blob import BlobServiceClient

from tests.functions.harness import events, exceptions, run_timer
from tests.support.report_tools import connection_string, free_port
from tests.support.tenant import scenario

pytestmark = pytest.mark.e2e  # every test here invokes a function in a child process (harness.py)


def test_the_timer_archives_the_runs_evidence(start_emulator, azurite):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    container = "evidence-timer"
    assert run_timer(emu, AzureWebJobsStorage=azurite.connection_string, EVIDENCE_CONTAINER=container).returncode == 0
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    run_id = completed["properties"]["run_id"]
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    names = sorted(blob.name for blob in blobs.list_blobs())
    assert [name.rsplit("/", 1)[1] for name in names] == [f"{run_id}.html", f"{run_id}.json", f"{run_id}.md"]
    document = json.loads(blobs.download_blob(next(n for n in names if n.endswith(".json"))).readall())
    assert document["status"] == "NonCompliant" and document["trigger"] == "timer"
    assert {control["id"] for control in document["controls"]} >= {"org-audit-enabled", "mailbox-audit-actions"}


def test_storage_down_is_reported_but_does_not_change_the_verdict(start_emulator):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    result = run_timer(emu, AzureWebJobsStorage=connection_string(free_port()))
    assert result.returncode == 0
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    assert completed["properties"]["status"] == "NonCompliant"
    [failure] = exceptions(emu)
    assert failure["properties"]["run_id"] == completed["properties"]["run_id"]
    assert "could not be archived" in result.stderr
    assert "AccountKey" not in result.stderr
