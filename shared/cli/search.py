"""`python -m shared search`: the investigation search of the unified audit log, exported for forensics.

The arguments, the checks before anything is sent, the progress on stderr and the output; the work is
shared/investigation/ (export.py runs it, client.py talks to Graph, the rest is pure). Exit 0 for a complete
export, 2 for anything else (incomplete, interrupted, refused, failed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared import __version__
from shared.cli.output import add_output_options, print_result
from shared.config.loader import search_settings
from shared.config.settings import ConfigError, Settings
from shared.exchange import client as exchange_client
from shared.exchange.auth import token_provider_for
from shared.exchange.client import RetryPolicy
from shared.graph.client import GraphClient
from shared.investigation.client import PERMISSION, AuditQueryClient
from shared.investigation.export import MANIFEST, RECORD_FILES, Exporter, existing_outputs, new_state, sha256_of
from shared.investigation.manifest import summary_lines
from shared.investigation.request import parse_request

EPILOG = """\
Searches the unified audit log (180 days or more; the activity feed reaches 7 days back) through Microsoft Graph's
audit log query API and exports every record found to DIR: records.jsonl (or records.csv: common columns, the raw
record as JSON in the last one) and manifest.json (filters, every query id and window, counts, complete or what is
missing, the tool version, the SHA-256 of the records file). The window is searched in 24-hour slices; a slice over
the query's record limit is halved down to GRAPH_AUDIT_MIN_SLICE_MINUTES, records are de-duplicated by id.
Times are ISO 8601, UTC unless they carry an offset (2026-05-01T08:00:00Z, 2026-05-01T10:00+02:00, now).
--mailbox matches the mailbox owner (MailboxOwnerUPN) of mailbox records, on the records received (Graph has no
such filter: combine it with --record-type or --operation to keep the query small).
Needs the Microsoft Graph application permission AuditLogsQuery.Read.All for the app's identity (EXO_* settings):
`python -m shared grant-permissions --principal-id <id> --search`. Global service only (no US Government or
21Vianet API). Exit codes: 0 complete export, 2 anything else (incomplete, interrupted, refused, error)."""


def add_search_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "search",
        help="search the unified audit log (Microsoft Graph) and export the records for forensic analysis",
        description="Search the audit log for an investigation and export a complete, checksummed result.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--start", required=True, metavar="TIME", help="start of the window (ISO 8601, UTC default)")
    parser.add_argument("--end", required=True, metavar="TIME", help="end of the window (ISO 8601, or 'now')")
    parser.add_argument("--operation", action="append", metavar="OP", help="e.g. MailboxLogin, SendAs (repeatable)")
    parser.add_argument("--user", action="append", metavar="UPN", help="who acted (repeatable)")
    parser.add_argument("--mailbox", action="append", metavar="UPN", help="the mailbox owner (repeatable)")
    parser.add_argument(
        "--record-type", action="append", metavar="TYPE", help="auditLogRecordType, e.g. ExchangeItem (repeatable)"
    )
    parser.add_argument("--ip", action="append", metavar="ADDR", help="client IP address (repeatable)")
    parser.add_argument("--keyword", metavar="TEXT", help="free text the records must contain")
    parser.add_argument("--out", required=True, metavar="DIR", help="a new or empty directory for the export")
    parser.add_argument("--format", choices=tuple(RECORD_FILES), default="jsonl", help="records file (default jsonl)")
    add_output_options(parser)
    return parser


def run_search_command(args: argparse.Namespace, settings: Settings) -> int:
    """The `search` command: check everything, then export; exit 0 only for a complete export."""
    now = datetime.now(UTC)
    try:
        search = search_settings(os.environ, settings)
    except ConfigError as exc:
        return _refuse(args, [str(exc)])
    parsed = parse_request(
        start=args.start,
        end=args.end,
        operations=args.operation,
        users=args.user,
        mailboxes=args.mailbox,
        record_types=args.record_type,
        ips=args.ip,
        keyword=args.keyword,
        now=now,
        max_days=search.max_days,
    )
    problems = list(parsed.problems)
    if not search.api_available:
        problems.append(
            f"The audit log query API does not exist in the {search.cloud_name} cloud (Microsoft Graph offers it in "
            "the global service only, not US Government L4/L5 or 21Vianet). There, search with Search-UnifiedAuditLog "
            "in Exchange Online PowerShell, or use the activity watch's feed (7 days)."
        )
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        problems.append(f"--out: {out_dir} exists and is not a directory")
    elif out_dir.is_dir() and (found := existing_outputs(out_dir)):
        problems.append(f"--out: {out_dir} already holds an export ({', '.join(found)}); choose a new directory")
    if problems or parsed.request is None:
        return _refuse(args, problems)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _refuse(args, [f"--out: cannot create {out_dir}: {exc.strerror or type(exc).__name__}"])

    tokens = token_provider_for(
        settings, search.scope, permission=f"the Microsoft Graph application permission {PERMISSION}"
    )
    graph = GraphClient(
        search.graph_url,
        None,
        search.scope,
        tokens=tokens,
        session=exchange_client.new_session(),  # looked up now: the one place sessions are made
        version=search.api_version,
        policy=RetryPolicy(max_attempts=8, deadline_seconds=min(300.0, search.query_timeout_minutes * 60)),
        sign_in_hint="Check the app's EXO_* credential settings (`python -m shared diagnose`).",
    )
    client = AuditQueryClient(
        graph, poll_seconds=search.poll_seconds, timeout_seconds=search.query_timeout_minutes * 60
    )
    state = new_state(
        parsed.request,
        tenant_id=settings.tenant_id,
        graph_endpoint=graph.api,
        api_version=search.api_version,
        output_format=args.format,
        now=now,
    )
    exporter = Exporter(
        client,
        state,
        out_dir,
        min_slice=timedelta(minutes=search.min_slice_minutes),
        progress=(lambda _line: None) if args.json else _progress_printer(),
    )
    manifest = exporter.run()
    manifest_path = out_dir / MANIFEST
    seal = f"sha256 {sha256_of(manifest_path)}" if manifest_path.is_file() else "NOT WRITTEN"
    text = "\n".join([*summary_lines(manifest), f"  manifest {manifest_path}: {seal} (note it in the case file)"])
    print_result(args.json, manifest, None if args.json else text, error=manifest["error"])
    return int(manifest["exit_code"])


def _progress_printer() -> Any:
    """Progress lines on stderr: every slice's end and anything unusual; `reading` lines at most once a second."""
    last = [0.0]

    def show(line: str) -> None:
        now = time.monotonic()
        if " reading: " in line and now - last[0] < 1.0:
            return
        last[0] = now
        print(f"search: {line}", file=sys.stderr, flush=True)

    return show


def _refuse(args: argparse.Namespace, problems: list[str]) -> int:
    """Refused before anything was sent: every problem on stderr, one JSON document with --json, exit 2."""
    message = "search refused, nothing was sent:\n  " + "\n  ".join(problems)
    print_result(
        args.json,
        {
            "tool": "mailbox-audit-guard",
            "tool_version": __version__,
            "command": "search",
            "status": "refused",
            "complete": False,
            "exit_code": 2,
            "error": message,
            "problems": problems,
        },
        error=message,
    )
    return 2
