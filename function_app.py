"""Azure Functions entry points (Python v2 model). Trigger bodies stay a few lines; the logic lives in shared/."""

from __future__ import annotations

import json
import logging
import os

import azure.functions as func

from shared.runtime import http_api, service, watch

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("mailbox_audit_guard.functions")


@app.timer_trigger(schedule="%AUDIT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def daily_audit_check(timer: func.TimerRequest) -> None:
    """Every day: check every control; with AUDIT_MODE=remediate also fix what is safe unattended (never a revert)."""
    if timer.past_due:
        log.warning("The daily mailbox audit check is running late (past due).")
    service.daily_run()


@app.timer_trigger(schedule="%WATCH_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def activity_watch(timer: func.TimerRequest) -> None:
    """Every few minutes: one pass over the audit feed from the checkpoint, bounded below the function timeout;
    a tampering alert re-checks (with AUDIT_MODE=remediate: fixes) the affected control."""
    if timer.past_due:
        log.warning("The activity watch is running late (past due).")
    watch.run_watch(trigger="timer")


@app.route(route="remediate", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
def remediate(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/remediate {"controls": [...], "dryRun": bool}: fix, verify by reading back, report per control."""

    def run(request: http_api.RemediationRequest, caller: http_api.Caller) -> service.RunReport:
        return service.execute(
            "remediate", trigger="http", control_ids=request.controls, dry_run=request.dry_run, caller=caller.label
        )

    status, document, headers = http_api.handle(req.method, req.headers, req.get_body(), os.environ, run)
    return func.HttpResponse(json.dumps(document), status_code=status, mimetype="application/json", headers=headers)
