"""function_app.py loaded, indexed and invoked by the real Python worker (`azure_functions_runtime`, pinned).

Each test runs tests/functions/worker_host.py in a fresh process: it sends the worker the messages the host sends
(init, metadata, load, invocation) through the runtime's public handlers. With
PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true, as in Azure, the worker sets the exporter up, not our code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from tests.functions.harness import OUR_FUNCTIONS, events, function_env
from tests.functions.test_http_remediation import AUTHORISED, EASY_AUTH, NON_COMPLIANT, ORG_ONLY
from tests.support.tenant import REPO, scenario, tenant_traffic

pytestmark = pytest.mark.e2e  # each test runs the real worker in a fresh child process

SUCCESS, FAILURE = 1, 0
IN, OUT = 0, 1
AZURE_LIKE = {
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
    "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME": "mailbox_audit_guard",
}


def converse(emu: Any, *args: str, **env: str) -> dict[str, Any]:
    child_env = function_env(emu, telemetry=emu is not None, **(AZURE_LIKE if emu is not None else {}), **env)
    child_env["TMPDIR"] = tempfile.mkdtemp(prefix="mag-worker-")  # the worker's exporter keeps retries under it
    result = subprocess.run(
        [sys.executable, "-m", "tests.functions.worker_host", *args],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def http(emu: Any, body: str, headers: dict[str, str], **env: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(delete=False, suffix=".body") as handle:
        handle.write(body.encode())
    try:
        return converse(emu, "http", "POST", handle.name, json.dumps(headers), **env)
    finally:
        Path(handle.name).unlink()


def by_name(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {fn["name"]: fn for fn in answer["metadata"]["function_metadata_results"]}


@pytest.fixture(scope="module")
def indexed() -> dict[str, Any]:
    return converse(None, "index")


def test_the_pinned_worker_starts_on_this_python(indexed):
    assert version("azure-functions-runtime") == "1.3.0"
    init = indexed["init"]
    assert init["result"] == {"status": SUCCESS}, init
    assert init["worker_metadata"]["runtime_name"] == "python"
    assert init["worker_metadata"]["runtime_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert init["worker_metadata"]["worker_version"] == version("azure-functions-runtime")
    assert "HttpUri" not in init["capabilities"]  # no HTTP streaming: the classic request/response binding


def test_the_worker_indexes_exactly_our_functions(indexed):
    functions = by_name(indexed)
    assert set(functions) == OUR_FUNCTIONS
    assert indexed["metadata"]["result"] == {"status": SUCCESS}
    assert indexed["metadata"]["use_default_metadata_indexing"] is False  # the worker indexed, not function.json
    for name, fn in functions.items():
        assert (fn["entry_point"], fn["script_file"], fn["directory"]) == (name, "function_app.py", str(REPO))
        assert fn["language"] == "python" and fn["properties"] == {"worker_indexed": "True"}
        assert fn["function_id"] == str(uuid.uuid5(uuid.NAMESPACE_OID, name))  # stable across restarts
        assert indexed["load"][name] == {"function_id": fn["function_id"], "result": {"status": SUCCESS}}


def test_the_timer_binding_the_host_gets(indexed):
    timer = by_name(indexed)["daily_audit_check"]
    assert timer["bindings"] == {"timer": {"type": "timerTrigger", "direction": IN}}
    [raw] = map(json.loads, timer["raw_bindings"])
    assert raw == {
        "direction": "IN",
        "type": "timerTrigger",
        "name": "timer",
        "schedule": "%AUDIT_SCHEDULE%",
        "runOnStartup": False,
        "useMonitor": True,
    }


def test_the_watch_timer_binding_the_host_gets(indexed):
    timer = by_name(indexed)["activity_watch"]
    assert timer["bindings"] == {"timer": {"type": "timerTrigger", "direction": IN}}
    [raw] = map(json.loads, timer["raw_bindings"])
    assert raw == {
        "direction": "IN",
        "type": "timerTrigger",
        "name": "timer",
        "schedule": "%WATCH_SCHEDULE%",
        "runOnStartup": False,
        "useMonitor": True,
    }


def test_the_http_bindings_the_host_gets(indexed):
    remediate = by_name(indexed)["remediate"]
    assert remediate["bindings"] == {
        "req": {"type": "httpTrigger", "direction": IN},
        "$return": {"type": "http", "direction": OUT},
    }
    trigger, output = map(json.loads, remediate["raw_bindings"])
    assert trigger == {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "route": "remediate",
        "authLevel": "FUNCTION",
        "methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
    }
    assert output == {"direction": "OUT", "type": "http", "name": "$return"}


def test_the_worker_runs_the_timer_against_the_tenant_and_its_exporter_sends_the_events(start_emulator):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": True}))
    answer = converse(emu, "timer", AUDIT_MODE="remediate")
    assert answer["init"]["capabilities"]["WorkerOpenTelemetryEnabled"] == "true"  # it owns the exporter
    invocation = answer["invocation"]
    assert invocation["result"] == {"status": SUCCESS}, invocation
    assert "return_value" not in invocation  # no $return binding: None back
    assert emu.tenant.organization_config["AuditDisabled"] is False
    [completed] = events(emu, "MailboxAuditCheckCompleted")
    assert (completed["properties"]["trigger"], completed["properties"]["command"]) == ("timer", "remediate")
    [step] = [e for e in events(emu, "MailboxAuditRemediation") if e["properties"]["control_id"] == "org-audit-enabled"]
    assert (step["properties"]["outcome"], step["properties"]["caller"]) == ("Applied", "timer:daily_audit_check")


def test_the_worker_runs_the_watch_timer_with_its_state_in_table_storage(start_emulator, azurite_tables):
    emu = start_emulator(scenario(organization_config={"AuditDisabled": False}))
    storage = {"AzureWebJobsStorage": azurite_tables.connection_string, "WATCH_TABLE_NAME": f"w{uuid.uuid4().hex[:12]}"}
    invocation = converse(emu, "watch", **storage)["invocation"]
    assert invocation["result"] == {"status": SUCCESS}, invocation
    [completed] = events(emu, "MailboxActivityWatchCompleted")
    assert (completed["properties"]["status"], completed["properties"]["trigger"]) == ("Clear", "timer")


def test_the_worker_converts_the_http_request_and_the_response(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    invocation = http(emu, ORG_ONLY, AUTHORISED, **EASY_AUTH)["invocation"]
    assert invocation["result"] == {"status": SUCCESS}, invocation
    response = invocation["return_value"]["http"]
    assert response["status_code"] == "200"
    assert response["headers"]["content-type"] == "application/json"
    body = json.loads(response["body"]["bytes"])
    [control] = body["controls"]
    assert control["outcome"] == "Applied"
    assert body["caller"] == "alice@contoso.com (00000000-0000-0000-0000-0000000000a1)"
    assert emu.tenant.organization_config["AuditDisabled"] is False


def test_an_unauthenticated_call_through_the_worker_is_a_401_with_its_header(start_emulator):
    emu = start_emulator(NON_COMPLIANT)
    invocation = http(emu, ORG_ONLY, {}, **EASY_AUTH)["invocation"]
    assert invocation["result"] == {"status": SUCCESS}  # the function answered; the answer is the refusal
    response = invocation["return_value"]["http"]
    assert response["status_code"] == "401"
    assert response["headers"]["WWW-Authenticate"] == "Bearer"
    assert "error" in json.loads(response["body"]["bytes"])
    assert tenant_traffic(emu) == []
