"""Azure Functions entry points (Python v2 model). Trigger bodies stay a few lines; the logic lives in shared/."""

from __future__ import annotations

import json
import logging
import os
import typing

import azure.functions as func

from shared.runtime import fanout, http_api, service, watch
from shared.runtime.tenants import tenant_config

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("mailbox_audit_guard.functions")


@app.timer_trigger(schedule="%AUDIT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def daily_audit_check(timer: func.TimerRequest) -> None:
    """Every day: check every control; with AUDIT_MODE=remediate also fix what is safe unattended (never a revert)."""
    if timer.past_due:
        log.warning("The daily mailbox audit check is running late (past due).")
    if fanout.single_tenant_runs():  # with a tenants register, daily_audit_dispatch fans the tenants out instead
        service.daily_run()


@app.timer_trigger(schedule="%WATCH_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def activity_watch(timer: func.TimerRequest) -> None:
    """Every few minutes: one pass over the audit feed from the checkpoint, bounded below the function timeout;
    a tampering alert re-checks (with AUDIT_MODE=remediate: fixes) the affected control."""
    if timer.past_due:
        log.warning("The activity watch is running late (past due).")
    if fanout.single_tenant_runs():  # with a tenants register, activity_watch_dispatch fans the tenants out
        watch.run_watch(trigger="timer")


# Many tenants (shared/runtime/fanout.py): a timer puts one message per registered tenant on a queue (the host's
# output binding, identity-based AzureWebJobsStorage); each message is one tenant's run, scaled out by the platform.
# `typing.List`, not `list[str]`: the worker (azure-functions-runtime 1.3.0) refuses a builtin generic inside Out[]
# ("invalid non-type annotation"); tests/functions/test_queue_fanout.py loads them in the real worker.
TenantMessages = func.Out[typing.List[str]]  # noqa: UP006


@app.timer_trigger(schedule="%AUDIT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
@app.queue_output(arg_name="tenants", queue_name=fanout.QUEUES["check"], connection="AzureWebJobsStorage")
def daily_audit_dispatch(timer: func.TimerRequest, tenants: TenantMessages) -> None:
    """Every day, with a tenants register: one message per tenant on the audit-tenants queue."""
    tenants.set(fanout.dispatch("check"))


@app.queue_trigger(arg_name="msg", queue_name=fanout.QUEUES["check"], connection="AzureWebJobsStorage")
def tenant_audit_check(msg: func.QueueMessage) -> None:
    """One tenant's daily run (the daily_audit_check run, with the tenant's settings); Error fails the delivery."""
    fanout.run_message("check", msg.get_body(), msg.dequeue_count or 1)


@app.timer_trigger(schedule="%WATCH_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
@app.queue_output(arg_name="tenants", queue_name=fanout.QUEUES["watch"], connection="AzureWebJobsStorage")
def activity_watch_dispatch(timer: func.TimerRequest, tenants: TenantMessages) -> None:
    """Every watch interval, with a tenants register: one message per tenant on the watch-tenants queue."""
    tenants.set(fanout.dispatch("watch"))


@app.queue_trigger(arg_name="msg", queue_name=fanout.QUEUES["watch"], connection="AzureWebJobsStorage")
def tenant_activity_watch(msg: func.QueueMessage) -> None:
    """One tenant's watch pass from its own checkpoint (the state rows are keyed by tenant)."""
    fanout.run_message("watch", msg.get_body(), msg.dequeue_count or 1)


@app.route(route="remediate", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
def remediate(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/remediate {"controls": [...], "dryRun": bool, "tenantId": id}: fix, verify by reading back, report
    per control; with a tenants register, for the tenant named (its settings, its write lock)."""

    def run(request: http_api.RemediationRequest, caller: http_api.Caller) -> service.RunReport:
        tenant = request.tenant
        return service.execute(
            "remediate",
            trigger="http",
            control_ids=request.controls,
            dry_run=request.dry_run,
            caller=caller.label,
            env=tenant.environment(os.environ) if tenant else None,
            config=tenant_config(os.environ, tenant) if tenant else None,
            tenant_name=tenant.name if tenant else None,
        )

    status, document, headers = http_api.handle(req.method, req.headers, req.get_body(), os.environ, run)
    return func.HttpResponse(json.dumps(document), status_code=status, mimetype="application/json", headers=headers)
