"""The command line: `python -m shared check | remediate | revert | watch | search | ...`, the functions' code path.

Exit codes as the original script: 0 compliant, 1 non-compliant, 2 error (configuration errors included).
`revert` exits 0 when the revert was applied and verified, 2 when it was not; `search` 0 for a complete export, else 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from shared import __version__
from shared.cli.diagnose import add_diagnose_parser, run_diagnose
from shared.cli.grant_permissions import add_grant_permissions_parser, run_grant_permissions
from shared.cli.output import add_output_options, log_to_stderr, print_result
from shared.cli.search import add_search_parser, run_search_command
from shared.cli.tenants import add_all_tenants_options, add_tenant_option, run_all_tenants, select_tenant
from shared.cli.watch import add_watch_parser, run_watch_command
from shared.config.settings import ConfigError, Settings
from shared.controls.registry import IMPLEMENTED_CONTROLS, REVERTIBLE_CONTROLS
from shared.evidence.document import exit_code, render_text, run_document
from shared.evidence.html import render_html
from shared.evidence.markdown import render_markdown
from shared.model import Status
from shared.runtime.service import execute
from shared.runtime.tenants import RegisterError

log = logging.getLogger("mailbox_audit_guard.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared",
        description="Check, fix and revert Exchange Online mailbox auditing. Settings come from EXO_* variables.",
    )
    parser.add_argument("--version", action="version", version=f"mailbox-audit-guard {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--control",
        action="append",
        choices=IMPLEMENTED_CONTROLS,
        metavar="ID",
        help=f"limit the run to this control (repeatable): {', '.join(IMPLEMENTED_CONTROLS)}",
    )
    common.add_argument(
        "--state",
        metavar="PATH",
        help="the activity watch's SQLite state: where the audit-pipeline canary is recorded, and what `report` "
        "shows in its activity section (default WATCH_STATE_PATH; the same file `watch --state` uses)",
    )
    add_tenant_option(common)
    add_output_options(common)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check", parents=[common], help="read and judge the controls (the original -Monitoring)"
    )
    add_all_tenants_options(check)
    fix = commands.add_parser("remediate", parents=[common], help="fix what is non-compliant (-Remediation)")
    fix.add_argument("--dry-run", action="store_true", help="show what would change, write nothing (-WhatIf)")
    revert = commands.add_parser(
        "revert",
        parents=[common],
        help="switch organisation-wide auditing OFF again (-Revert); dangerous",
        description="Switch organisation-wide auditing OFF again. --control accepts only the revertible controls: "
        f"{', '.join(REVERTIBLE_CONTROLS)} (default org-audit-enabled).",
    )
    revert.add_argument(
        "--confirm", required=True, metavar="TENANT_ID", help="the tenant id again, to prove you mean this tenant"
    )
    revert.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    report = commands.add_parser(
        "report", parents=[common], help="run the check and write the evidence report (JSON, Markdown or HTML)"
    )
    report.add_argument("--format", choices=("json", "md", "html"), default="html")
    report.add_argument("--out", required=True, metavar="FILE", help="where to write it ('-' for stdout)")
    add_grant_permissions_parser(commands)
    add_diagnose_parser(commands)
    add_watch_parser(commands)
    add_search_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except Exception as exc:  # never a traceback and exit 1 (which would read as NonCompliant): exit 2, fail closed
        log.info("unexpected failure", exc_info=True)  # shown with -v (INFO), tokens and secrets masked
        return _fail(
            args,
            f"Unexpected {type(exc).__name__}; nothing can be concluded (run with -v for details).",
            tenant_id=None,
        )


def _main(args: argparse.Namespace) -> int:
    if args.command == "grant-permissions":  # needs no EXO_* settings
        return run_grant_permissions(args)
    if getattr(args, "all_tenants", False):
        if args.tenant:
            return _fail(args, "--tenant and --all-tenants exclude each other", tenant_id=None)
        _configure_logging(args.verbose, None, secrets_from=os.environ)
        return run_all_tenants(args)
    env: Mapping[str, str] = os.environ
    tenant_name = None
    if getattr(args, "tenant", None):
        try:
            tenant, env = select_tenant(os.environ, args.tenant)
        except RegisterError as exc:
            return _fail(args, str(exc), tenant_id=None)
        tenant_name = tenant.name
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        if args.command == "watch":  # the watch's own Error document, naming the setting
            _configure_logging(args.verbose, None)
            return run_watch_command(args, env, tenant_name)
        return _fail(args, str(exc), tenant_id=None)
    _configure_logging(args.verbose, settings)
    if args.command == "watch":
        return run_watch_command(args, env, tenant_name)
    if args.command == "diagnose":
        return run_diagnose(args, settings)
    if args.command == "search":
        return run_search_command(args, settings)

    control_ids = tuple(dict.fromkeys(args.control)) if args.control else None
    if args.command == "revert":
        if args.confirm.strip().lower() != settings.tenant_id:
            return _fail(
                args,
                "revert refused: --confirm must name the configured tenant id (EXO_TENANT_ID); nothing was sent.",
                tenant_id=settings.tenant_id,
            )
        control_ids = control_ids or ("org-audit-enabled",)
        not_revertible = [cid for cid in control_ids if cid not in REVERTIBLE_CONTROLS]
        if not_revertible:
            return _fail(
                args, f"revert is not available for: {', '.join(not_revertible)}", tenant_id=settings.tenant_id
            )
        print(
            f"WARNING: about to switch OFF mailbox auditing ({', '.join(control_ids)}) for tenant "
            f"{settings.tenant_id}. Mailbox actions will no longer be audited.",
            file=sys.stderr,
        )

    command = "check" if args.command == "report" else args.command
    report = execute(
        command,
        trigger="cli",
        env=env,
        tenant_name=tenant_name,
        settings=settings,
        control_ids=control_ids,
        dry_run=getattr(args, "dry_run", False),
        caller=_local_caller() if command != "check" else None,
        with_activity=args.command == "report",
        state_path=args.state,
    )
    code = exit_code(report)
    if args.command == "report":
        return _write_report(args, run_document(report, code), code)
    if args.json:
        print(json.dumps(run_document(report, code), indent=2))
    else:
        print(render_text(report, code))
    return code


def _write_report(args: argparse.Namespace, document: dict[str, Any], code: int) -> int:
    """Write the evidence in the asked format; the exit code stays the check's (2 if the file cannot be written)."""
    renderers = {"json": lambda d: json.dumps(d, indent=2) + "\n", "md": render_markdown, "html": render_html}
    text = renderers[args.format](document)
    if args.out == "-":
        sys.stdout.write(text)
        return code
    try:
        # Exchange strings are UTF-16 and may hold a lone surrogate: escape it rather than lose the report.
        with open(args.out, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(text)
    except OSError as exc:
        print(f"--out: cannot write {args.out}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return Status.ERROR.exit_code
    print(
        f"Evidence report ({args.format}) written to {args.out}: {document['status']} (exit code {code})",
        file=sys.stderr,
    )
    return code


def _local_caller() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _fail(args: argparse.Namespace, message: str, *, tenant_id: str | None) -> int:
    """A run that could not start: clear message on stderr, one JSON document with --json, exit 2."""
    print_result(
        args.json,
        {
            "tool": "mailbox-audit-guard",
            "tool_version": __version__,
            "command": args.command,
            "tenant_id": tenant_id,
            "status": str(Status.ERROR),
            "exit_code": 2,
            "error": message,
            "controls": [],
        },
        error=message,
    )
    return Status.ERROR.exit_code


def _configure_logging(
    verbose: bool, settings: Settings | None, *, secrets_from: Mapping[str, str] | None = None
) -> None:
    """Diagnostics to stderr, secrets masked, for the rest of the process (`secrets_from`: the environment's
    secrets when there are no single-tenant settings, as for --all-tenants)."""
    secrets = [(secrets_from or {}).get(name, "") for name in ("EXO_CLIENT_SECRET", "EXO_CERTIFICATE_PASSWORD")]
    # The token libraries log their own tracebacks for failures we already turn into a clear message.
    library = logging.WARNING if verbose else logging.CRITICAL
    log_to_stderr(
        {"": logging.WARNING, "mailbox_audit_guard": logging.INFO, "msal": library, "azure": library},
        handler_level=logging.INFO if verbose else logging.WARNING,
        secrets=[settings.client_secret or "", settings.certificate_password or ""] if settings else secrets,
    )
