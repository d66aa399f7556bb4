"""`python -m shared grant-permissions`: give the managed identity what Exchange Online needs, through Graph.

The arguments, the sign-in and the output; the work is shared/graph/grant.py, the plan shared/graph/grant_plan.py.
Exit 0 when all assignments (three, four with --search) are in place, 2 on any error. Needs no EXO_* setting.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests

from shared.cli.output import add_output_options, log_to_stderr, print_result
from shared.config.clouds import CLOUDS, Cloud
from shared.config.loader import graph_target
from shared.graph.client import GraphClient
from shared.graph.grant import grant_permissions
from shared.graph.grant_plan import GrantReport, is_guid
from shared.graph.grant_render import render_text, report_document

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

EPILOG = """\
Assigns, on the identity's service principal, only what is missing:
  1. the app role Exchange.ManageAsApp of "Office 365 Exchange Online" (appId 00000002-0000-0ff1-ce00-000000000000);
  2. the Entra role Exchange Administrator (needed to remediate) or, with --read-only, Global Reader (checks only),
     directory-wide;
  3. the app role ActivityFeed.Read (application permission) of "Office 365 Management APIs" (appId
     c5393580-f805-4401-95e8-94b7a6ef2fc2): the activity watch reads the audit feed with it (also with --read-only);
  4. with --search, the app role AuditLogsQuery.Read.All (application permission) of Microsoft Graph (appId
     00000003-0000-0000-c000-000000000000): `python -m shared search` queries the unified audit log with it.
  5. with --retention-policy: the Entra role Compliance Data Administrator, directory-wide, for the opt-in
     audit-retention-policy check (AUDIT_RETENTION_POLICY_CHECK=true). It is broad: its Purview Organization
     Configuration role can also delete audit retention policies; no narrower role reads them.
Run it as a Privileged Role Administrator (or Global Administrator) of the Microsoft 365 tenant. Credentials: the
Azure CLI login (`az login --tenant <tenant id>`; for national clouds `az cloud set` first), then the
DefaultAzureCredential chain (environment, workload identity, managed identity, ...). An app needs the Graph
permissions AppRoleAssignment.ReadWrite.All + Application.Read.All (app role) and RoleManagement.ReadWrite.Directory
(directory role). GRAPH_ENDPOINT overrides the Graph base URL. Exit codes: 0 all in place, 2 error.

Least privilege: an Entra role applies to the whole directory. Exchange RBAC role groups are the narrower
alternative (e.g. View-Only Organization Management for checks, a custom group for remediation). Graph cannot
assign them: in Exchange Online PowerShell run `New-ServicePrincipal -AppId <client id> -ObjectId <principal id>`,
then `Add-RoleGroupMember`. That route needs the app roles but no Entra role: assign the two app roles by hand
instead of running this command, which always assigns an Entra role too.
"""


def add_grant_permissions_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `grant-permissions` on the CLI's subparsers (shared/cli/main.py calls this)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "grant-permissions",
        help="give the managed identity the Exchange Online and audit feed permissions (Microsoft Graph)",
        description="Assign the Exchange.ManageAsApp app role, an Entra role and the ActivityFeed.Read app role to "
        "the identity, through Microsoft Graph. Idempotent. Needs no EXO_* setting.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--principal-id",
        required=True,
        metavar="ID",
        help="the identity's service principal object id (azd output IDENTITY_PRINCIPAL_ID); an app "
        "(client) id is looked up too",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="assign Global Reader (checks only) instead of Exchange Administrator (remediation)",
    )
    parser.add_argument(
        "--search",
        action="store_true",
        help="also assign Microsoft Graph's AuditLogsQuery.Read.All, for `python -m shared search`",
    )
    parser.add_argument(
        "--retention-policy",
        action="store_true",
        help="also assign Compliance Data Administrator, which audit-retention-policy needs to read (and fix) "
        "Purview audit retention policies (broad: it can delete them too)",
    )
    parser.add_argument(
        "--cloud",
        choices=tuple(CLOUDS),
        default=None,
        help="the Microsoft cloud, for the Graph host and sign-in (default: EXO_CLOUD, else global)",
    )
    add_output_options(parser)
    return parser


def default_credential(cloud: Cloud) -> TokenCredential:
    """The Azure CLI login first, then the DefaultAzureCredential chain (without the CLI a second time)."""
    from azure.identity import AzureCliCredential, ChainedTokenCredential, DefaultAzureCredential

    options = {} if cloud.name == "global" else {"authority": cloud.authority}
    return ChainedTokenCredential(AzureCliCredential(), DefaultAzureCredential(exclude_cli_credential=True, **options))


def run_grant_permissions(
    args: argparse.Namespace,
    *,
    credential: TokenCredential | None = None,
    session: requests.Session | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """The `grant-permissions` command: exit 0 when all assignments are in place, 2 otherwise.

    `credential`, `session` and `environ` are for tests; by default the Azure CLI / DefaultAzureCredential chain,
    a new requests session and os.environ."""
    # Our own progress (each Graph call) with -v; azure-identity's warnings only with -v too, as our message
    # already says what failed. Restored afterwards: tests run the command in process.
    restore = log_to_stderr(
        {
            "mailbox_audit_guard": logging.DEBUG if args.verbose else logging.WARNING,
            "azure": logging.INFO if args.verbose else logging.CRITICAL,
        }
    )
    try:
        report = _grant(args, credential, session, os.environ if environ is None else environ)
        print_result(args.json, report_document(report), render_text(report), error=report.error)
        return report.exit_code
    finally:
        restore()


def _grant(
    args: argparse.Namespace,
    credential: TokenCredential | None,
    session: requests.Session | None,
    environ: Mapping[str, str],
) -> GrantReport:
    """Check the input before anything is sent, then grant; a wrong input is a report with an error."""
    reference = args.principal_id.strip().lower()
    target = graph_target(environ, args.cloud)
    cloud, graph_url = CLOUDS.get(target.cloud_name), target.graph_url
    retention = bool(getattr(args, "retention_policy", False))
    report = GrantReport(
        requested_id=reference,
        read_only=args.read_only,
        graph_url=graph_url,
        search=args.search,
        retention_policy=retention,
    )
    if target.problem is not None or cloud is None:
        report.error = target.problem
    elif not is_guid(reference):
        report.error = (
            "--principal-id must be a GUID: the identity's service principal object id (azd output "
            "IDENTITY_PRINCIPAL_ID) or its client id."
        )
    else:
        client = GraphClient(graph_url, credential or default_credential(cloud), cloud.graph_scope, session=session)
        report = grant_permissions(
            client, reference, read_only=args.read_only, search=args.search, retention_policy=retention
        )
    return report
