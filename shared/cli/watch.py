"""`python -m shared watch`: one pass of the activity watch over the audit feed, each new alert reported once."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from shared.activity.watch import WatchReport
from shared.cli.output import add_output_options, print_result
from shared.cli.tenants import add_tenant_option
from shared.runtime.watch import run_watch

EPILOG = """\
One pass over the Office 365 Management Activity API (Audit.Exchange and Audit.AzureActiveDirectory unless
WATCH_CONTENT_TYPES says otherwise): from the checkpoint in the state file (the first pass reads
WATCH_FIRST_LOOKBACK_HOURS back), every new record through the detections, each alert reported once: a later pass
over the same records reports it again in no alert list. An audit-tampering alert re-checks the affected control at
once; with AUDIT_MODE=remediate the safe ones are fixed unattended. Run it as often as you like (cron, a scheduler):
the state keeps the checkpoint, the seen records and the alerts already reported. Exit codes: 0 no new alert,
1 at least one new alert, 2 error (progress made before it is kept; the next pass resumes)."""


def add_watch_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "watch",
        help="one pass of the activity watch: read the audit feed, alert on what the detections find",
        description="Read the tenant's audit feed once and report new alerts (docs/detections.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state",
        metavar="PATH",
        help="the watch's SQLite state file (default WATCH_STATE_PATH, else under $XDG_STATE_HOME or ~/.local/state)",
    )
    add_tenant_option(parser)
    add_output_options(parser)
    return parser


def run_watch_command(
    args: argparse.Namespace, env: Mapping[str, str] | None = None, tenant_name: str | None = None
) -> int:
    """One pass; `env`: a tenant's environment of the register (--tenant), else the process's."""
    report = run_watch(trigger="cli", state_path=args.state, env=env, tenant_name=tenant_name)
    print_result(args.json, report.as_json(), render_text(report), error=report.error)
    return report.exit_code


def render_text(report: WatchReport) -> str:
    """The pass for a person: counts, each new alert, the re-checks, gaps and what to know."""
    lag = "unknown (no record seen yet)" if report.feed_lag_minutes is None else f"{report.feed_lag_minutes:g} min"
    lines = [
        f"Activity watch for tenant {report.tenant_id}",
        f"  records: {report.records_processed} new, {report.records_duplicate} duplicate, "
        f"{report.records_unparsed} unparsed; content blobs: {report.content_blobs}; feed lag: {lag}",
    ]
    if report.alerts:
        lines.append(f"New alerts ({len(report.alerts)}):")
        for alert in report.alerts:
            where = f" from {alert.client_ip}" if alert.client_ip else ""
            country = f" ({alert.country})" if alert.country else ""
            lines.append(
                f"  [{alert.severity}] {alert.detection} {alert.time:%Y-%m-%d %H:%M:%S} UTC {alert.actor}"
                f"{' → ' + alert.mailbox if alert.mailbox else ''}: {alert.operation}{where}{country}"
            )
            lines.append(f"      {alert.message}")
            lines.append(f"      id {alert.id}; records {', '.join(alert.record_ids)}")
    else:
        lines.append("No new alerts.")
    for recheck in report.rechecks:
        lines.append(f"Re-checked {recheck.id}: {recheck.status}")
    for gap in report.gaps:
        lines.append(f"Gap: {gap.message}")
    lines.extend(f"Note: {note}" for note in report.notes)
    if report.error:
        lines.append(f"Error: {report.error}")
    lines.append(f"Overall: {report.status} (exit code {report.exit_code})")
    return "\n".join(lines)
