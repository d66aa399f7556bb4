"""The Security & Compliance (IPPS) admin API: the same InvokeCommand client, another host, scope and cmdlet set.

Only `audit-retention-policy` talks to it, so a run opens it on first use (`ComplianceConnection`). The first call
to the global host answers with a redirect to the tenant's regional host, which the client follows and pins
(activity-feed.md §6.1); the token keeps the global host's audience (§6.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from shared.exchange.auth import TokenProvider
from shared.exchange.client import ORGANIZATION_ANCHOR_GUID, ExchangeClient
from shared.exchange.errors import ComplianceUnavailable

# The only cmdlets the app sends there: never Get-/Set-AdminAuditLogConfig, whose value IPPS always reports False
# (§6.6).
COMPLIANCE_CMDLETS = frozenset(
    {"Get-UnifiedAuditLogRetentionPolicy", "New-UnifiedAuditLogRetentionPolicy", "Set-UnifiedAuditLogRetentionPolicy"}
)
# The only cmdlets grant-permissions (a signed-in administrator) sends there: the app's pointer and its role group.
COMPLIANCE_RBAC_CMDLETS = frozenset(
    {
        "New-ServicePrincipal",
        "Get-ServicePrincipal",
        "New-RoleGroup",
        "Get-RoleGroup",
        "Get-RoleGroupMember",
        "Add-RoleGroupMember",
        "New-ManagementRoleAssignment",
    }
)
ENDPOINT_SETTING = "IPPS_ENDPOINT"


def compliance_anchor(organization: str | None, tenant_id: str) -> str:
    """The X-AnchorMailbox IPPS clients send: the UPN form with the initial domain (§6.1), else the app form."""
    if organization:
        return f"UPN:SystemMailbox{{{ORGANIZATION_ANCHOR_GUID}}}@{organization}"
    return f"APP:SystemMailbox{{{ORGANIZATION_ANCHOR_GUID}}}@{tenant_id}"


def regional_host(home_host: str) -> Callable[[str, int | None], tuple[str, int | None]]:
    """Where a redirect from the global host leads: a `Location` such as `eur02b.admin.protection.outlook.com:446`
    names the region by its first label, served at `eur02b.ps.compliance.protection.outlook.com` on 443 (§6.1).
    Hosts already under the global host, and anything outside its parent domain, are left as they are (the client's
    domain rule then refuses the latter)."""
    labels = home_host.split(".")
    parent = ".".join(labels[2:]) if len(labels) > 3 and not home_host.replace(".", "").isdigit() else None

    def rewrite(host: str, port: int | None) -> tuple[str, int | None]:
        if parent is None or host == home_host or host.endswith("." + home_host) or not host.endswith("." + parent):
            return host, port
        return f"{host.split('.', maxsplit=1)[0]}.{home_host}", 443

    return rewrite


def compliance_client(
    url: str, tenant_id: str, tokens: TokenProvider, *, anchor: str, cmdlets: frozenset[str], **options: Any
) -> ExchangeClient:
    """The Exchange client on the IPPS host `url`: only `cmdlets`, the regional redirect followed and pinned, the
    messages naming IPPS_ENDPOINT. `tokens` must be for the global host's audience (§6.2); `options` go to
    ExchangeClient (policy, run_deadline, session)."""
    return ExchangeClient(
        url,
        tenant_id,
        tokens,
        default_anchor=anchor,
        cmdlets=cmdlets,
        endpoint_setting=ENDPOINT_SETTING,
        redirect_host=regional_host((urlsplit(url).hostname or "").lower()),
        **options,
    )


class ComplianceConnection:
    """The run's Security & Compliance client, opened on first use and shared by every read and write of the run."""

    def __init__(self, opener: Callable[[], ExchangeClient] | None) -> None:
        self._opener = opener
        self._client: ExchangeClient | None = None

    def client(self) -> ExchangeClient:
        if self._client is None:
            if self._opener is None:
                raise ComplianceUnavailable("no Security & Compliance endpoint is configured for this run")
            self._client = self._opener()
        return self._client

    @property
    def requests_sent(self) -> int:
        return self._client.requests_sent if self._client is not None else 0

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
