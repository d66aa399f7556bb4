"""`--tenant ID` and `check --all-tenants [--parallel N]`: the command line over the tenants register
(AUDIT_TENANTS_FILE). Each tenant's run is the single-tenant run with that tenant's settings; the runs of
`--all-tenants` go through a bounded thread pool, so one slow or throttled tenant holds one thread, not the others.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared import __version__
from shared.config.settings import ConfigError
from shared.config.tenants import Rejected, Tenant, TenantRegister
from shared.evidence.document import exit_code, render_text, run_document
from shared.model import RunReport, Status
from shared.runtime.service import execute
from shared.runtime.tenants import RegisterError, load_register, tenant_config

MAX_PARALLEL = 32


def add_tenant_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenant",
        metavar="ID",
        help="run for this tenant of the tenants register (AUDIT_TENANTS_FILE), with its own settings",
    )


def add_all_tenants_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--all-tenants",
        action="store_true",
        help="check every tenant of the register (AUDIT_TENANTS_FILE): one table per tenant and a summary; "
        "exits with the worst status",
    )
    parser.add_argument(
        "--parallel",
        type=_parallel,
        default=4,
        metavar="N",
        help=f"with --all-tenants: how many tenants are checked at once (1 to {MAX_PARALLEL}, default 4)",
    )


def _parallel(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PARALLEL}")
    return number


def cli_register(env: Mapping[str, str]) -> TenantRegister:
    """The command line's register: AUDIT_TENANTS_FILE, required for --tenant and --all-tenants."""
    try:
        register = load_register(env, "cli")
    except ConfigError as exc:
        raise RegisterError(str(exc)) from None
    if register is None:
        raise RegisterError("--tenant and --all-tenants need the tenants register: set AUDIT_TENANTS_FILE")
    return register


def select_tenant(env: Mapping[str, str], tenant_id: str) -> tuple[Tenant, dict[str, str]]:
    """The tenant `--tenant` names and the environment its run is loaded from; RegisterError says why not."""
    register = cli_register(env)
    tenant = register.find(tenant_id)
    if tenant is not None:
        return tenant, tenant.environment(env)
    refused = register.refusal(tenant_id)
    if refused is not None:
        raise RegisterError(f"{register.source}: {refused.message}; nothing was sent")
    raise RegisterError(f"tenant {tenant_id.strip()[:64]} is not in the tenants register ({register.source})")


@dataclass
class TenantRun:
    """One line of the summary: a tenant's run, or a register entry that could not run."""

    tenant: Tenant | None
    report: RunReport | None = None
    rejected: Rejected | None = None

    @property
    def exit_code(self) -> int:
        return exit_code(self.report) if self.report is not None else Status.ERROR.exit_code

    def document(self) -> dict[str, Any]:
        if self.report is None:
            assert self.rejected is not None
            return {
                "tenant_id": self.rejected.tenant_id,
                "status": str(Status.ERROR),
                "exit_code": self.exit_code,
                "error": f"register entry refused: {self.rejected.message}",
                "register_entry": self.rejected.as_dict(),
            }
        assert self.tenant is not None
        return {
            "tenant_id": self.tenant.tenant_id,
            "organization": self.tenant.organization,
            "display_name": self.tenant.display_name,
            "status": str(self.report.status),
            "exit_code": self.exit_code,
            "run": run_document(self.report, self.exit_code),
        }


def check_all(
    env: Mapping[str, str], register: TenantRegister, parallel: int, control_ids: Sequence[str] | None = None
) -> list[TenantRun]:
    """Check every tenant of the register, `parallel` at a time; the refused entries are Error lines."""

    def one(tenant: Tenant) -> TenantRun:
        report = execute(
            "check",
            trigger="cli",
            control_ids=control_ids,
            env=tenant.environment(env),
            config=tenant_config(env, tenant),
            tenant_name=tenant.name,
        )
        return TenantRun(tenant, report)

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="tenant") as pool:
        runs = list(pool.map(one, register.tenants))
    return runs + [TenantRun(None, rejected=entry) for entry in register.rejected]


def run_all_tenants(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """`check --all-tenants`: prints one table per tenant and a summary (or one JSON document); the worst exit."""
    env = os.environ if env is None else env
    try:
        register = cli_register(env)
    except RegisterError as exc:
        return _refuse(args, str(exc))
    controls = tuple(dict.fromkeys(args.control)) if args.control else None
    runs = check_all(env, register, args.parallel, controls)
    code = max((run.exit_code for run in runs), default=Status.ERROR.exit_code)  # no tenant at all proves nothing
    if args.json:
        print(
            json.dumps(
                {
                    "tool": "mailbox-audit-guard",
                    "tool_version": __version__,
                    "command": "check",
                    "register": register.source,
                    "status": _status_of(code),
                    "exit_code": code,
                    "tenants": [run.document() for run in runs],
                },
                indent=2,
            )
        )
        return code
    blocks = [render_text(run.report, run.exit_code) for run in runs if run.report is not None]
    print("\n\n".join([*blocks, summary(runs, code, register.source)]))
    return code


def summary(runs: list[TenantRun], code: int, source: str) -> str:
    """The table of every tenant's outcome, then the worst."""
    rows = [("TENANT", "NAME", "STATUS", "FAILED")]
    for run in runs:
        if run.report is not None and run.tenant is not None:
            rows.append(
                (run.tenant.tenant_id, run.tenant.name, str(run.report.status), ", ".join(run.report.failed_controls))
            )
        elif run.rejected is not None:
            rows.append((run.rejected.tenant_id or "-", "-", str(Status.ERROR), f"refused: {run.rejected.message}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"Tenants of {source}: {len(runs)}", ""]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    counts = {status: sum(1 for row in rows[1:] if row[2] == str(status)) for status in Status}
    lines += [
        "",
        "Overall: "
        + _status_of(code)
        + " ("
        + ", ".join(f"{count} {status}" for status, count in counts.items() if count)
        + f"; exit code {code})",
    ]
    return "\n".join(lines)


def _status_of(code: int) -> str:
    return str(next((status for status in Status if status.exit_code == code), Status.ERROR))


def _refuse(args: argparse.Namespace, message: str) -> int:
    from shared.cli.output import print_result

    print_result(
        args.json,
        {
            "tool": "mailbox-audit-guard",
            "tool_version": __version__,
            "command": args.command,
            "status": str(Status.ERROR),
            "exit_code": Status.ERROR.exit_code,
            "error": message,
            "tenants": [],
        },
        error=message,
    )
    return Status.ERROR.exit_code
