"""The many-tenant fan-out through real Azurite queues and tables and the real Python worker (worker_host.py):
the dispatch timer's output binding gives one message per registered tenant, each message is one tenant's run in
the queue-triggered function, and the host's redelivery and poison queue (played by tests/support/queues.py, as
the host's queue listener does it) isolate a failing tenant from the others."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient

from shared.runtime.fanout import MAX_DEQUEUE_COUNT, QUEUES
from tests.functions.harness import events
from tests.functions.test_worker_runtime import converse
from tests.support.queues import QueueHost, Queues
from tests.support.report_tools import DEV_ACCOUNT
from tests.support.tenant import REPO, TENANT_ID, scenario

pytestmark = pytest.mark.e2e

SUCCESS, FAILURE = 1, 0
FABRIKAM = "99999999-9999-9999-9999-999999999999"  # consented nowhere in the emulator: its sign-in is refused


@pytest.fixture
def storage(azurite, azurite_tables):
    """The app's storage account: blobs and tables on the session's Azurite, a fresh tenants table."""
    table = f"t{uuid.uuid4().hex[:12]}"
    connection = azurite_tables.connection_string + f"BlobEndpoint=http://127.0.0.1:{azurite.port}/{DEV_ACCOUNT};"
    return {
        "AzureWebJobsStorage": connection,
        "AUDIT_TENANTS_TABLE": table,
        "WATCH_TABLE_NAME": f"w{uuid.uuid4().hex[:12]}",
    }


def register(storage: dict[str, str], *rows: dict[str, Any]) -> None:
    with TableClient.from_connection_string(storage["AzureWebJobsStorage"], storage["AUDIT_TENANTS_TABLE"]) as table:
        table.create_table()
        for row in rows:
            table.create_entity({"PartitionKey": "tenant", **row})


def deliver(emu: Any, function: str, text: str, dequeue_count: int, **env: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".msg") as handle:
        handle.write(text)
    try:
        return converse(emu, "queue", function, handle.name, str(dequeue_count), **env)["invocation"]
    finally:
        Path(handle.name).unlink()


def dispatched(answer: dict[str, Any]) -> list[str]:
    invocation = answer["invocation"]
    assert invocation["result"] == {"status": SUCCESS}, invocation
    [output] = invocation["output_data"]
    assert output["name"] == "tenants"
    return json.loads(output["data"]["json"])


def test_host_json_poisons_after_the_same_number_of_deliveries_the_code_reports():
    queues = json.loads((REPO / "host.json").read_text())["extensions"]["queues"]
    assert queues["maxDequeueCount"] == MAX_DEQUEUE_COUNT == 5
    assert queues["messageEncoding"] == "base64"


def test_each_tenant_runs_from_its_own_message_and_a_failing_one_is_poisoned_alone(
    start_emulator, storage, azurite_queues
):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    register(
        storage,
        {"RowKey": TENANT_ID, "organization": "contoso.onmicrosoft.com", "display_name": "Contoso"},
        {"RowKey": FABRIKAM, "organization": "fabrikam.onmicrosoft.com", "display_name": "Fabrikam"},
        {"RowKey": "not-a-tenant", "organization": "x.onmicrosoft.com"},
    )
    env = {
        **storage,
        "EXO_AUTH_MODE": "federated_identity",
        "EXO_CLIENT_ID": emu.client_id,
        "EXO_MANAGED_IDENTITY_CLIENT_ID": emu.managed_identity_client_id,
    }
    messages = dispatched(converse(emu, "dispatch", **env))
    assert [json.loads(m)["tenant_id"] for m in messages] == [TENANT_ID, FABRIKAM]
    expected = events(emu, "MailboxAuditTenantExpected")
    assert [(e["properties"]["tenant_id"], e["properties"]["tenant_name"]) for e in expected] == [
        (TENANT_ID, "Contoso"),
        (FABRIKAM, "Fabrikam"),
    ]
    [refused] = events(emu, "MailboxAuditQueueMessageRejected")
    assert "tenant 3: tenant_id" in refused["properties"]["reason"]

    queues = Queues(azurite_queues.port)
    host = QueueHost(queues, f"{QUEUES['check']}-{uuid.uuid4().hex[:8]}", MAX_DEQUEUE_COUNT)
    for message in messages:  # what the host does with the output binding's list
        queues.put(host.queue, message)
    deliveries = host.drain(
        lambda text, count: deliver(emu, "tenant_audit_check", text, count, **env)["result"]["status"] == SUCCESS
    )
    by_tenant: dict[str, list[tuple[int, bool]]] = {}
    for text, count, ok in deliveries:
        by_tenant.setdefault(json.loads(text)["tenant_id"], []).append((count, ok))
    assert by_tenant[TENANT_ID] == [(1, True)]  # Contoso's run never waited for, or failed with, Fabrikam's
    assert by_tenant[FABRIKAM] == [(n, False) for n in range(1, MAX_DEQUEUE_COUNT + 1)]
    assert [json.loads(t)["tenant_id"] for t in queues.texts(host.poison)] == [FABRIKAM]

    runs = events(emu, "MailboxAuditCheckCompleted")
    contoso = [r["properties"] for r in runs if r["properties"]["tenant_id"] == TENANT_ID]
    assert [(r["status"], r["trigger"], r["tenant_name"]) for r in contoso] == [("NonCompliant", "queue", "Contoso")]
    assert len([r for r in runs if r["properties"]["tenant_id"] == FABRIKAM]) == MAX_DEQUEUE_COUNT
    [poisoned] = events(emu, "MailboxAuditTenantPoisoned")
    assert (poisoned["properties"]["tenant_id"], poisoned["properties"]["dequeue_count"]) == (FABRIKAM, "5")
    assert emu.tenant.organization_config["AuditDisabled"] is True  # AUDIT_MODE=report: nothing written


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ('{"tenant_id": "x"}', "not a tenant GUID"),
        (json.dumps({"tenant_id": FABRIKAM}), "not in the register"),
        (json.dumps({"tenant_id": TENANT_ID, "kind": "watch"}), "watch-tenants"),
    ],
)
def test_a_bad_message_is_reported_and_completed_never_retried(start_emulator, storage, text, reason):
    emu = start_emulator()
    register(storage, {"RowKey": TENANT_ID, "organization": "contoso.onmicrosoft.com"})
    invocation = deliver(emu, "tenant_audit_check", text, 1, **storage)
    assert invocation["result"]["status"] == SUCCESS, invocation  # completed: the host deletes it
    [rejected] = events(emu, "MailboxAuditQueueMessageRejected")
    assert reason in rejected["properties"]["reason"]
    assert [r for r in emu.requests if r.listener == "exchange"] == []


def test_the_watch_fans_out_too_with_each_tenants_own_checkpoint(start_emulator, storage):
    emu = start_emulator()
    register(storage, {"RowKey": TENANT_ID, "organization": "contoso.onmicrosoft.com", "display_name": "Contoso"})
    [message] = dispatched(converse(emu, "watch-dispatch", **storage))
    invocation = deliver(emu, "tenant_activity_watch", message, 1, **storage)
    assert invocation["result"]["status"] == SUCCESS, invocation
    [completed] = events(emu, "MailboxActivityWatchCompleted")
    props = completed["properties"]
    assert (props["status"], props["trigger"], props["tenant_name"]) == ("Clear", "queue", "Contoso")
    with TableClient.from_connection_string(storage["AzureWebJobsStorage"], storage["WATCH_TABLE_NAME"]) as table:
        assert any(TENANT_ID in row["PartitionKey"] for row in table.list_entities())  # the tenant's own rows


def test_with_a_register_the_single_tenant_timer_leaves_the_tenants_to_the_queue(start_emulator, storage):
    emu = start_emulator()
    register(storage, {"RowKey": TENANT_ID, "organization": "contoso.onmicrosoft.com"})
    assert converse(emu, "timer", **storage)["invocation"]["result"] == {"status": SUCCESS}
    assert events(emu, "MailboxAuditCheckCompleted") == []  # nobody checked twice: the dispatcher owns them


def test_without_a_register_the_dispatcher_sends_nothing(start_emulator, storage):
    emu = start_emulator()
    assert dispatched(converse(emu, "dispatch", **storage)) == []
    assert events(emu, "MailboxAuditTenantExpected") == []


def test_a_throttled_tenant_is_retried_by_the_queue_while_the_others_run_unhindered(
    start_emulator, storage, azurite_queues
):
    """Two real tenants behind the emulator (a guest tenant for Fabrikam), Fabrikam's Exchange answering 429 until
    the third delivery: Contoso completes on its first delivery, Fabrikam on its third, nothing is poisoned."""
    from emulator import Fault

    fabrikam = "22222222-2222-2222-2222-222222222222"
    emu = start_emulator(scenario(tenants=[{"tenant_id": fabrikam, "organization": "fabrikam.onmicrosoft.com"}]))
    register(
        storage,
        {"RowKey": TENANT_ID, "organization": "contoso.onmicrosoft.com"},
        {"RowKey": fabrikam, "organization": "fabrikam.onmicrosoft.com"},
    )
    throttled = emu.add_fault(Fault("status", listener="exchange", status=429, times=-1, tenant=fabrikam))
    env = {
        **storage,
        "EXO_AUTH_MODE": "federated_identity",
        "EXO_CLIENT_ID": emu.client_id,
        "EXO_MANAGED_IDENTITY_CLIENT_ID": emu.managed_identity_client_id,
        "EXO_OPERATION_DEADLINE_SECONDS": "1",  # a throttled read gives up fast: the queue retries, not the run
    }
    queues = Queues(azurite_queues.port)
    host = QueueHost(queues, f"{QUEUES['check']}-{uuid.uuid4().hex[:8]}", MAX_DEQUEUE_COUNT)
    for message in dispatched(converse(emu, "dispatch", **env)):
        queues.put(host.queue, message)

    def invoke(text: str, count: int) -> bool:
        if json.loads(text)["tenant_id"] == fabrikam and count == 3:
            emu.faults.clear()  # Exchange stops throttling Fabrikam
        return deliver(emu, "tenant_audit_check", text, count, **env)["result"]["status"] == SUCCESS

    deliveries = host.drain(invoke)
    assert throttled.fired > 0
    assert [(count, ok) for text, count, ok in deliveries if TENANT_ID in text] == [(1, True)]
    assert [(count, ok) for text, count, ok in deliveries if fabrikam in text] == [(1, False), (2, False), (3, True)]
    assert queues.texts(host.poison) == []
    statuses = [
        (e["properties"]["tenant_id"], e["properties"]["status"]) for e in events(emu, "MailboxAuditCheckCompleted")
    ]
    assert statuses.count((TENANT_ID, "Compliant")) == 1 and statuses[-1] == (fabrikam, "Compliant")
