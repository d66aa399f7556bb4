"""`python -m shared diagnose`: the first run in a real tenant, checking every assumption the client makes."""

from __future__ import annotations

import argparse
from typing import Any

from shared.cli.output import add_output_options, print_result
from shared.config.settings import Settings
from shared.diagnose.assumptions import render_text, report_document
from shared.diagnose.probe import run

EPILOG = """\
Read-only by default: the token's claims (never the token), each read cmdlet once, paging with two rows per page
over the first pages of Get-Mailbox and Get-MailboxAuditBypassAssociation, the shape of an empty answer, both forms
of a boolean filter, warning texts, redirects, throttling headers and timings. --write-test-mailbox adds, on that one
mailbox, an action it already audits (@{Add=...}, on a logon type it has already customised, as writing a managed
one would take it out of DefaultAuditSet) and the AuditLogAgeLimit it already has, then reads back: nothing
changes. Exit codes: 0 every assumption held, 1 one did not (named, with what to do), 2 it
could not run. The --json output holds no token or secret: send it to the maintainers."""


def add_diagnose_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diagnose",
        help="check the client's assumptions against this tenant (read-only; the first run in a real tenant)",
        description="Check every assumption about the Exchange admin API against the configured tenant.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--write-test-mailbox",
        metavar="UPN",
        help="also prove the write shapes on this one mailbox (writes values it already has)",
    )
    add_output_options(parser)
    return parser


def run_diagnose(args: argparse.Namespace, settings: Settings) -> int:
    report = run(settings, write_test_mailbox=(args.write_test_mailbox or "").strip() or None)
    print_result(args.json, report_document(report), render_text(report), error=report.error)
    return report.exit_code
