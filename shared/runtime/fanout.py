"""The queue fan-out: one deployment, many tenants, scaled out by the platform (queue-triggered functions on Flex
Consumption add instances as a queue grows), with no scheduler of our own.

The timers (`daily_audit_dispatch`, `activity_watch_dispatch`) put one message per registered tenant on a queue
(`audit-tenants`, `watch-tenants`) through the Functions host's queue output binding (identity-based connection
`AzureWebJobsStorage`); each message is one tenant's run in a queue-triggered function (`tenant_audit_check`,
`tenant_activity_watch`), isolated from every other tenant's: its own settings, token, client, deadline and
invocation. A message that is not valid (not JSON, no tenant GUID, a tenant not in the register) is logged,
reported and completed: retrying it cannot help, and it must never crash-loop. A tenant whose run ends in Error
fails the invocation, so the host redelivers it after the visibility timeout (host.json), and after
MAX_DEQUEUE_COUNT deliveries moves it to the `-poison` queue; the last failure sends MailboxAuditTenantPoisoned,
which has its own alert rule.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from shared.config import loader
from shared.config.settings import ConfigError
from shared.config.tenants import Tenant, TenantRegister
from shared.model import Status
from shared.runtime import service, telemetry, watch
from shared.runtime.tenants import RegisterError, load_register, tenant_config

log = logging.getLogger("mailbox_audit_guard.fanout")

Kind = Literal["check", "watch"]
QUEUES: dict[Kind, str] = {"check": "audit-tenants", "watch": "watch-tenants"}
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount (a test keeps them equal)
MAX_MESSAGE_BYTES = 4096
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class TenantRunFailed(Exception):
    """The tenant's run ended in Error: fail the invocation so that the host redelivers it (then poisons it)."""


@dataclass(frozen=True)
class TenantMessage:
    """What a queue message asks: one tenant's run, from one dispatch."""

    tenant_id: str
    kind: Kind
    dispatch_id: str

    def encode(self) -> str:
        return json.dumps({"tenant_id": self.tenant_id, "kind": self.kind, "dispatch_id": self.dispatch_id})


def parse_message(body: bytes | str, kind: Kind) -> TenantMessage:
    """The message's tenant and kind, or ValueError saying what is wrong (never echoing more than a bounded id)."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ValueError(f"the message is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("the message is not JSON") from None
    if not isinstance(document, dict):
        raise ValueError("the message is not a JSON object")
    tenant_id = document.get("tenant_id")
    if not isinstance(tenant_id, str) or not _GUID.match(tenant_id):
        raise ValueError("the message's tenant_id is not a tenant GUID")
    if (other := document.get("kind", kind)) != kind:
        names: dict[str, str] = {str(key): value for key, value in QUEUES.items()}
        where = names.get(other, f"kind {str(other)[:16]!r}") if isinstance(other, str) else "another kind"
        raise ValueError(f"the message is for {where}, not {QUEUES[kind]}")
    dispatch_id = document.get("dispatch_id")
    return TenantMessage(tenant_id.lower(), kind, str(dispatch_id)[:64] if dispatch_id else "")


def register_or_none(env: Mapping[str, str]) -> TenantRegister | None:
    """The Function App's register (None: the single tenant of the EXO_* settings); RegisterError or ConfigError
    when it is configured but unusable."""
    return load_register(env, "timer")


def single_tenant_runs(env: Mapping[str, str] | None = None) -> bool:
    """Whether the single-tenant timers run the EXO_* tenant themselves: no register. When the register cannot be
    read, they still run it if the EXO_* settings name a tenant (the dispatcher reports the failure and sends
    nothing, so no tenant is checked twice)."""
    env = os.environ if env is None else env
    try:
        return register_or_none(env) is None
    except (RegisterError, ConfigError) as exc:
        log.error("The tenants register could not be read: %s", exc)
        return loader.reported_tenant(env) != "unknown"


def dispatch(kind: Kind, env: Mapping[str, str] | None = None) -> list[str]:
    """The messages for one dispatch: one per valid tenant of the register, each announced as expected (the
    per-tenant dead man's switch joins on it). A refused entry is reported; no register: nothing to send."""
    env = os.environ if env is None else env
    telemetry.configure(loader.telemetry_for(env))
    dispatch_id = str(uuid.uuid4())
    try:
        try:
            register = register_or_none(env)
        except (RegisterError, ConfigError) as exc:
            log.error("Dispatch %s (%s): the tenants register could not be read: %s", dispatch_id, kind, exc)
            telemetry.emit_exception(  # the check-failed (watch-failed) alert fires: no tenant was sent
                f"Mailbox audit {kind} dispatch could not read the tenants register",
                run_id=dispatch_id,
                tenant_id=None,
                command=kind,
            )
            return []
        if register is None:
            log.info("Dispatch %s (%s): no tenants register; the single-tenant timer runs.", dispatch_id, kind)
            return []
        for refused in register.rejected:
            log.error("Dispatch %s: %s: %s (not sent)", dispatch_id, register.source, refused.message)
            telemetry.emit_fanout(
                telemetry.MESSAGE_REJECTED,
                {
                    "dispatch_id": dispatch_id,
                    "tenant_id": refused.tenant_id,
                    "queue": QUEUES[kind],
                    "reason": f"register entry refused: {refused.message}"[:500],
                },
            )
        messages = []
        now = datetime.now(UTC).isoformat()
        for tenant in register.tenants:
            messages.append(TenantMessage(tenant.tenant_id, kind, dispatch_id).encode())
            telemetry.emit_fanout(
                telemetry.TENANT_EXPECTED,
                {
                    "dispatch_id": dispatch_id,
                    "tenant_id": tenant.tenant_id,
                    "tenant_name": tenant.name,
                    "queue": QUEUES[kind],
                    "dispatched_at": now,
                },
            )
        log.info("Dispatch %s: %d tenant(s) to %s", dispatch_id, len(messages), QUEUES[kind])
        return messages
    finally:
        telemetry.flush()


def run_message(kind: Kind, body: bytes | str, dequeue_count: int, env: Mapping[str, str] | None = None) -> str:
    """One tenant's run for a queue message; returns the run's status. A bad message is reported and completed;
    a run that ends in Error raises TenantRunFailed (redelivered by the host, poisoned after the last try)."""
    env = os.environ if env is None else env
    try:
        message = parse_message(body, kind)
        register = register_or_none(env)
    except ValueError as exc:
        _reject(kind, None, str(exc), dequeue_count, env)
        return "Rejected"
    except ConfigError as exc:
        raise RegisterError(str(exc)) from None  # the deployment's setting, not the message: retry, then poison
    tenant = register.find(message.tenant_id) if register is not None else None
    if tenant is None:
        refused = register.refusal(message.tenant_id) if register is not None else None
        why = (
            "there is no tenants register"
            if register is None
            else (f"its register entry is refused: {refused.message}" if refused else "it is not in the register")
        )
        _reject(kind, message.tenant_id, f"tenant {message.tenant_id}: {why}", dequeue_count, env)
        return "Rejected"
    status, run_id = _run(kind, tenant, env)
    if status == str(Status.ERROR):
        last = dequeue_count >= MAX_DEQUEUE_COUNT
        if last:
            telemetry.emit_fanout(
                telemetry.TENANT_POISONED,
                {
                    "run_id": run_id,
                    "tenant_id": tenant.tenant_id,
                    "tenant_name": tenant.name,
                    "queue": QUEUES[kind],
                    "dequeue_count": dequeue_count,
                    "dispatch_id": message.dispatch_id,
                },
            )
            telemetry.flush()
        raise TenantRunFailed(
            f"tenant {tenant.tenant_id} ({tenant.name}): the {kind} run {run_id} ended in Error on delivery "
            f"{dequeue_count} of {MAX_DEQUEUE_COUNT}"
            + ("; the message goes to the poison queue" if last else "; the host delivers it again")
        )
    return status


def _run(kind: Kind, tenant: Tenant, env: Mapping[str, str]) -> tuple[str, str]:
    """The tenant's run, as the single-tenant timers do it, with its own settings; (status, run id)."""
    tenant_env, config = tenant.environment(env), tenant_config(env, tenant)
    if kind == "check":
        report = service.daily_run(tenant_env, config=config, trigger="queue", tenant_name=tenant.name)
        return str(report.status), report.run_id
    pass_report = watch.run_watch(trigger="queue", env=tenant_env, config=config, tenant_name=tenant.name)
    return str(pass_report.status), pass_report.run_id


def _reject(kind: Kind, tenant_id: str | None, reason: str, dequeue_count: int, env: Mapping[str, str]) -> None:
    """Log and report a message that cannot be run; the function then completes it (no retry, no crash loop)."""
    log.error("A message on %s was not run and is dropped: %s", QUEUES[kind], reason)
    telemetry.configure(loader.telemetry_for(env))
    telemetry.emit_fanout(
        telemetry.MESSAGE_REJECTED,
        {"tenant_id": tenant_id, "queue": QUEUES[kind], "reason": reason[:500], "dequeue_count": dequeue_count},
    )
    telemetry.flush()
