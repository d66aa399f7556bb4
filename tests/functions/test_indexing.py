"""Index function_app.py the way the Functions Python worker does, with the public azure-functions library."""

from __future__ import annotations

import importlib
import inspect
import json

import azure.functions as func
import pytest

from tests.functions.harness import OUR_FUNCTIONS


@pytest.fixture(scope="module")
def functions():
    module = importlib.import_module("function_app")
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    assert len(apps) == 1, "the worker needs exactly one FunctionApp at module level"
    app = apps[0]
    app.functions_bindings = None  # get_functions() is not idempotent; the worker calls it once
    return {fn.get_function_name(): fn for fn in app.get_functions()}


def test_exactly_our_functions(functions):
    """The single-tenant three, and the many-tenant fan-out: two dispatch timers and two queue triggers."""
    assert set(functions) == OUR_FUNCTIONS


def test_the_fan_out_binds_its_queues_through_the_identity_based_storage_connection(functions):
    for dispatcher, worker, queue in (
        ("daily_audit_dispatch", "tenant_audit_check", "audit-tenants"),
        ("activity_watch_dispatch", "tenant_activity_watch", "watch-tenants"),
    ):
        raw = [json.loads(b) for b in functions[dispatcher].get_raw_bindings()]
        [out] = [b for b in raw if b["type"] == "queue"]
        assert (out["direction"], out["queueName"], out["connection"]) == ("OUT", queue, "AzureWebJobsStorage")
        [trigger] = [json.loads(b) for b in functions[worker].get_raw_bindings()]
        assert (trigger["type"], trigger["queueName"], trigger["connection"]) == (
            "queueTrigger",
            queue,
            "AzureWebJobsStorage",
        )
    [timer] = [json.loads(b) for b in functions["daily_audit_dispatch"].get_raw_bindings() if "timerTrigger" in b]
    assert (timer["schedule"], timer["runOnStartup"]) == ("%AUDIT_SCHEDULE%", False)


def test_parameter_names_equal_binding_names(functions):
    for name, fn in functions.items():
        params = set(inspect.signature(fn.get_user_function()).parameters) - {"context"}
        bindings = {binding.name for binding in fn.get_bindings() if binding.name != "$return"}
        assert params == bindings, name
        json.loads(fn.get_function_json())


def test_timer_is_daily_from_an_app_setting_with_monitor_and_no_run_on_startup(functions):
    [trigger] = [b for b in functions["daily_audit_check"].get_raw_bindings() if "timerTrigger" in b]
    binding = json.loads(trigger)
    assert binding["schedule"] == "%AUDIT_SCHEDULE%"
    assert binding["runOnStartup"] is False
    assert binding["useMonitor"] is True


def test_the_watch_timer_runs_from_its_own_app_setting_with_monitor_and_no_run_on_startup(functions):
    [trigger] = [b for b in functions["activity_watch"].get_raw_bindings() if "timerTrigger" in b]
    binding = json.loads(trigger)
    assert binding["schedule"] == "%WATCH_SCHEDULE%"
    assert binding["runOnStartup"] is False
    assert binding["useMonitor"] is True  # one invocation at a time: a long pass is never overlapped by the next


def test_example_watch_schedule_is_every_ten_minutes():
    with open("local.settings.example.json") as handle:
        schedule = json.load(handle)["Values"]["WATCH_SCHEDULE"]
    assert schedule.split() == ["0", "*/10", "*", "*", "*", "*"]


def test_example_schedule_has_six_fields_and_runs_daily():
    with open("local.settings.example.json") as handle:
        schedule = json.load(handle)["Values"]["AUDIT_SCHEDULE"]
    fields = schedule.split()
    assert len(fields) == 6
    assert fields[3:] == ["*", "*", "*"]  # every day of every month, every weekday


def test_remediation_route_requires_a_function_key(functions):
    fn = functions["remediate"]
    trigger = json.loads(next(b for b in fn.get_raw_bindings() if "httpTrigger" in b))
    assert trigger["route"] == "remediate"
    assert trigger["authLevel"] == "FUNCTION"
    assert "POST" in trigger["methods"]
    outputs = [json.loads(b) for b in fn.get_raw_bindings() if '"http"' in b]
    assert outputs and outputs[0]["name"] == "$return"


def test_host_json_has_the_bundle_and_a_timeout_the_check_fits_in():
    with open("host.json") as handle:
        host = json.load(handle)
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    hours, minutes, _seconds = map(int, host["functionTimeout"].split(":"))
    assert 10 <= hours * 60 + minutes <= 60


def test_requirements_are_pinned_and_never_list_the_worker():
    with open("requirements.txt") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    assert all("==" in line for line in lines)
    names = {line.split("==")[0].lower() for line in lines}
    assert "azure-functions-worker" not in names
    assert {"azure-functions", "azure-identity", "msal", "requests", "azure-monitor-opentelemetry"} <= names
