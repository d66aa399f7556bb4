"""`python -m shared grant-permissions`: give the managed identity what Exchange Online needs, through Graph.

The arguments, the sign-in and the output; the work is shared/graph/grant.py, the plan shared/graph/grant_plan.py.
Exit 0 when all assignments are in place, 2 on any error. Needs no EXO_TENANT_ID or credential setting.
With --exchange-roles the Exchange role group part (shared/graph/role_groups.py) runs after the Graph part.
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
from shared.exchange.auth import CredentialTokenProvider, TokenError
from shared.exchange.client import ExchangeClient, new_session
from shared.exchange.compliance import COMPLIANCE_RBAC_CMDLETS, compliance_client
from shared.graph.client import GraphClient
from shared.graph.grant import grant_permissions
from shared.graph.grant_plan import GrantReport, Principal, is_guid
from shared.graph.grant_render import render_text, report_document
from shared.graph.role_groups import grant_exchange_roles
from shared.graph.role_groups_plan import COMPLIANCE, EXCHANGE, App, RoleGroupReport, Use
from shared.jwt_claims import unverified_claims

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

EPILOG = """\
Least privilege first: with --exchange-roles the identity gets no Entra role. Signed in as an Exchange
Administrator, the command registers the identity in Exchange Online (New-ServicePrincipal) and makes it a member
of one custom Exchange role group, created or completed as needed:
  --exchange-roles check      "Mailbox Audit Guard (check)": View-Only Configuration, View-Only Recipients;
  --exchange-roles remediate  "Mailbox Audit Guard (remediate)": those plus Audit Logs, Organization Configuration.
Mail Recipients joins "remediate" only when the canary write needs it (AUDIT_CANARY_MAILBOX set and
AUDIT_CANARY_WRITE=custom-attribute, the default). A dehydrated tenant gets Enable-OrganizationCustomization
first (the role group can then take hours to apply). With --retention-policy, on the Security & Compliance
endpoint too (IPPS_ENDPOINT overrides it): its own New-ServicePrincipal and "Mailbox Audit Guard (retention
policies)" with the Purview role Organization Configuration (no read-only role reads retention policies; it can
also delete them; that side needs a Global Administrator). Set EXO_PERMISSION_MODEL=role-group on the app
afterwards, so its evidence states the model.

Through Microsoft Graph it assigns, on the identity's service principal, only what is missing:
  1. the app role Exchange.ManageAsApp of "Office 365 Exchange Online" (appId 00000002-0000-0ff1-ce00-000000000000);
  2. without --exchange-roles (or with --entra-role), the broader Entra role Exchange Administrator (to remediate)
     or, with --read-only, Global Reader (checks only), directory-wide;
  3. the app role ActivityFeed.Read (application permission) of "Office 365 Management APIs" (appId
     c5393580-f805-4401-95e8-94b7a6ef2fc2): the activity watch reads the audit feed with it (also with --read-only);
  4. with --search, the app role AuditLogsQuery.Read.All (application permission) of Microsoft Graph (appId
     00000003-0000-0000-c000-000000000000): `python -m shared search` queries the unified audit log with it.
  5. with --retention-policy and without --exchange-roles: the Entra role Compliance Data Administrator,
     directory-wide, for the opt-in audit-retention-policy check (AUDIT_RETENTION_POLICY_CHECK=true). Broader
     than the Security & Compliance role group: besides Purview Organization Configuration (which can also delete
     audit retention policies; no narrower role reads them) it reaches the rest of Purview.
Run it as a Privileged Role Administrator (or Global Administrator) of the Microsoft 365 tenant; --exchange-roles
also needs Exchange Administrator (Role Management in Exchange). Credentials: the Azure CLI login (`az login
--tenant <tenant id>`; for national clouds `az cloud set` first), then the DefaultAzureCredential chain
(environment, workload identity, managed identity, ...). An app needs the Graph permissions
AppRoleAssignment.ReadWrite.All + Application.Read.All (app role) and RoleManagement.ReadWrite.Directory
(directory role). GRAPH_ENDPOINT and EXO_ENDPOINT override the base URLs. --dry-run shows the plan and changes
nothing. Exit codes: 0 all in place (or planned), 2 error.
"""


def add_grant_permissions_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `grant-permissions` on the CLI's subparsers (shared/cli/main.py calls this)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "grant-permissions",
        help="give the managed identity the Exchange Online and audit feed permissions (Microsoft Graph)",
        description="Assign the Exchange.ManageAsApp app role, an Entra role and the ActivityFeed.Read app role to "
        "the identity, through Microsoft Graph. Idempotent. Needs no EXO_TENANT_ID or credential setting (EXO_CLOUD, "
        "EXO_ENDPOINT, IPPS_ENDPOINT and AUDIT_CANARY_* are read when set).",
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
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--exchange-roles",
        nargs="?",
        const="check",
        choices=[str(use) for use in Use],
        default=None,
        metavar="check|remediate",
        help="least privilege: an Exchange role group for the identity instead of an Entra role (the value defaults "
        "to check; WITHOUT this flag the broad Entra role Exchange Administrator, or Global Reader with --read-only, "
        "is assigned)",
    )
    model.add_argument(
        "--entra-role",
        action="store_true",
        help="the broader option (the default without --exchange-roles): the Entra role Exchange Administrator, "
        "or Global Reader with --read-only",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would be assigned and change nothing")
    parser.add_argument(
        "--search",
        action="store_true",
        help="also assign Microsoft Graph's AuditLogsQuery.Read.All, for `python -m shared search`",
    )
    parser.add_argument(
        "--retention-policy",
        action="store_true",
        help="also give what audit-retention-policy needs to read (and fix) Purview audit retention policies: with "
        "--exchange-roles a Security & Compliance role group with Organization Configuration, else the Entra role "
        "Compliance Data Administrator (either can delete them too)",
    )
    parser.add_argument(
        "--tenant",
        metavar="ID",
        help="many tenants: prepare this customer tenant for the multi-tenant app (--principal-id its client id): "
        "print the admin consent URL, then sign in to that tenant and grant there (idempotent)",
    )
    parser.add_argument(
        "--cloud",
        choices=tuple(CLOUDS),
        default=None,
        help="the Microsoft cloud, for the Graph host and sign-in (default: EXO_CLOUD, else global)",
    )
    add_output_options(parser)
    return parser


def default_credential(cloud: Cloud, tenant_id: str | None = None) -> TokenCredential:
    """The Azure CLI login first, then the DefaultAzureCredential chain (without the CLI a second time); with
    `tenant_id` (--tenant), tokens of that tenant only."""
    from azure.identity import AzureCliCredential, ChainedTokenCredential, DefaultAzureCredential

    options: dict[str, Any] = {} if cloud.name == "global" else {"authority": cloud.authority}
    if tenant_id is None:
        return ChainedTokenCredential(
            AzureCliCredential(), DefaultAzureCredential(exclude_cli_credential=True, **options)
        )
    chain = ChainedTokenCredential(
        AzureCliCredential(tenant_id=tenant_id),
        DefaultAzureCredential(exclude_cli_credential=True, additionally_allowed_tenants=[tenant_id], **options),
    )
    return _TenantCredential(chain, tenant_id)


class _TenantCredential:
    """A credential asking every token of one tenant (the customer's, not the signed-in account's home tenant)."""

    def __init__(self, inner: Any, tenant_id: str) -> None:
        self._inner, self._tenant_id = inner, tenant_id

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return self._inner.get_token(*scopes, tenant_id=self._tenant_id, **kwargs)

    def close(self) -> None:
        self._inner.close()


def consent_url(cloud: Cloud, tenant_id: str, app_id: str) -> str:
    """The admin consent URL of the multi-tenant app in a customer tenant (the app's application permissions)."""
    return f"{cloud.authority}/{tenant_id}/adminconsent?client_id={app_id}"


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
        print_result(args.json, report_document(report), render_text(report), error=report.all_errors)
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
    use = Use(args.exchange_roles) if args.exchange_roles else None
    tenant_id = (getattr(args, "tenant", None) or "").strip().lower() or None
    report = GrantReport(
        requested_id=reference,
        read_only=args.read_only,
        graph_url=graph_url,
        search=args.search,
        retention_policy=retention,
        directory_role=use is None,
        dry_run=args.dry_run,
        tenant_id=tenant_id,
        consent_url=(
            consent_url(cloud, tenant_id, reference)
            if cloud and tenant_id and is_guid(tenant_id) and is_guid(reference)
            else None  # never a URL built from input that was not checked
        ),
    )
    if target.problem is not None or cloud is None:
        report.error = target.problem
    elif tenant_id is not None and not is_guid(tenant_id):
        report.error = "--tenant must be the customer tenant's GUID."
        report.consent_url = None
    elif not is_guid(reference):
        report.error = (
            "--principal-id must be a GUID: the identity's service principal object id (azd output "
            "IDENTITY_PRINCIPAL_ID) or its client id."
        )
    elif use is not None and args.read_only:
        report.error = "--read-only chooses an Entra role; with Exchange role groups use --exchange-roles check."
    elif tenant_id is not None and (
        wrong := _wrong_tenant(credential or default_credential(cloud, tenant_id), cloud.graph_scope, tenant_id)
    ):
        report.error = wrong
    else:
        credential = credential or default_credential(cloud, tenant_id)
        client = GraphClient(graph_url, credential, cloud.graph_scope, session=session)
        report = grant_permissions(
            client,
            reference,
            read_only=args.read_only,
            search=args.search,
            retention_policy=retention,
            directory_role=use is None,
            dry_run=args.dry_run,
        )
        if tenant_id is not None:
            report.tenant_id, report.consent_url = tenant_id, consent_url(cloud, tenant_id, reference)
            if report.principal is None and report.error:  # not consented yet: no service principal in the tenant
                report.error += (
                    f"\nIn a customer tenant the multi-tenant app's service principal exists only after an "
                    f"administrator of that tenant consented: {report.consent_url} (then run this again)."
                )
        if use is not None and report.principal is not None and report.results:
            report.exchange = _role_groups(
                report.principal,
                use,
                EXCHANGE,
                target.exchange_url,
                cloud.token_scope,
                credential,
                args,
                target.canary_needs_mail_recipients,
            )
            if retention:
                url = target.compliance_url
                scope = cloud.compliance_scope or (f"{url}/.default" if url else None)
                report.compliance = _role_groups(report.principal, use, COMPLIANCE, url, scope, credential, args)
    return report


def _tenant_mismatch(signed_in: str, expected: str) -> str:
    return (
        f"The sign-in is for tenant {signed_in}, not --tenant {expected}: nothing was sent. Sign in to the customer "
        f"tenant (`az login --tenant {expected}`); a managed identity in the chain signs in to its own tenant only."
    )


def _wrong_tenant(credential: TokenCredential, scope: str, expected: str) -> str | None:
    """Why the credential cannot act in `expected` (its token is for another tenant, or none came), else None:
    checked before anything is read or written there, so a grant never lands in the provider's own tenant."""
    try:
        token = credential.get_token(scope).token
    except Exception as exc:  # the credential chain's own errors: named by type, never with their text (secrets)
        return f"No sign-in token for tenant {expected} ({type(exc).__name__}); run `az login --tenant {expected}`."
    signed_in = str(unverified_claims(token).get("tid") or "").lower()
    return None if signed_in == expected else _tenant_mismatch(signed_in or "unknown", expected)


def _role_groups(
    principal: Principal,
    use: Use,
    endpoint: str,
    url: str | None,
    scope: str | None,
    credential: TokenCredential,
    args: Any,
    canary_needs_mail_recipients: bool = False,
) -> RoleGroupReport:
    """One endpoint's role group part, signed in as the administrator: a delegated token for the endpoint's
    audience from the same credential chain, sent by the app's own InvokeCommand client (its tenant and routing
    anchor read from the token). Security & Compliance gets the IPPS client: only the grant's cmdlets, the
    regional redirect followed and pinned."""

    def failed(error: str) -> RoleGroupReport:
        return RoleGroupReport(use=use, endpoint_url=url or "", endpoint=endpoint, dry_run=args.dry_run, error=error)

    if url is None or scope is None:
        return failed("No Security & Compliance host is known for this cloud; set IPPS_ENDPOINT.")
    tokens = CredentialTokenProvider(credential, scope)
    try:
        claims = unverified_claims(tokens.get_token())
    except TokenError as exc:
        return failed(str(exc))
    tenant_id = str(claims.get("tid") or "")
    user = str(claims.get("upn") or claims.get("preferred_username") or "") or None
    if not is_guid(tenant_id):
        return failed("The sign-in token names no tenant (tid); sign in with `az login --tenant <tenant id>`.")
    expected = (getattr(args, "tenant", None) or "").strip().lower()
    if expected and tenant_id.lower() != expected:
        return failed(_tenant_mismatch(tenant_id, expected))
    # Delegated sessions route by the caller (exchange-admin-api.md §2.2).
    anchor = f"UPN:{user}" if user else None
    if endpoint == COMPLIANCE:
        client = compliance_client(
            url, tenant_id, tokens, anchor=anchor or "", cmdlets=COMPLIANCE_RBAC_CMDLETS, session=new_session()
        )
    else:
        client = ExchangeClient(url, tenant_id, tokens, session=new_session(), default_anchor=anchor)
    try:
        app = App(principal.app_id, principal.id, principal.display_name)
        return grant_exchange_roles(
            client,
            app,
            use,
            endpoint=endpoint,
            dry_run=args.dry_run,
            canary_needs_mail_recipients=canary_needs_mail_recipients,
            signed_in=user,
        )
    finally:
        client.close()
