"""The Microsoft 365 clouds we know: Exchange host, token scope, login authority, Graph and Management Activity API
hosts, in one table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    """Where one Microsoft 365 cloud keeps Exchange Online and its login service."""

    name: str
    exchange_host: str
    authority: str
    graph_host: str = "graph.microsoft.com"
    management_host: str = "manage.office.com"  # the Office 365 Management Activity API (= its token audience)
    # Microsoft Graph's audit log query API (`search`): "Global service" only in every auditLogQuery page's national
    # cloud table (activity-feed.md §4.2; not US Government L4/L5, not 21Vianet). GCC uses the global service.
    audit_query_api: bool = False
    # The Security & Compliance (IPPS) admin API's global host (= its token audience); None: none known.
    compliance_host: str | None = "ps.compliance.protection.outlook.com"
    # The audience of the managed identity's token that federated_identity mode presents as the client assertion.
    federation_audience: str = "api://AzureADTokenExchange"

    @property
    def exchange_url(self) -> str:
        return f"https://{self.exchange_host}"

    @property
    def exchange_resource(self) -> str:
        """The token audience (`aud`) Exchange expects; the scope is this plus `/.default`."""
        return f"https://{self.exchange_host}"

    @property
    def token_scope(self) -> str:
        return f"{self.exchange_resource}/.default"

    @property
    def graph_url(self) -> str:
        """Microsoft Graph's base URL in this cloud (without the version segment)."""
        return f"https://{self.graph_host}"

    @property
    def graph_scope(self) -> str:
        """The token scope for Microsoft Graph in this cloud (used by grant-permissions only)."""
        return f"https://{self.graph_host}/.default"

    @property
    def management_url(self) -> str:
        """The Management Activity API's base URL in this cloud (the feed lives under /api/v1.0/{tenant}/activity)."""
        return f"https://{self.management_host}"

    @property
    def management_scope(self) -> str:
        """The token scope of the Management Activity API: the host is the audience (activity-feed.md §1.1)."""
        return f"https://{self.management_host}/.default"

    @property
    def compliance_url(self) -> str | None:
        """The Security & Compliance admin API's global host; its first answer redirects to the tenant's region."""
        return f"https://{self.compliance_host}" if self.compliance_host else None

    @property
    def compliance_scope(self) -> str | None:
        """The token scope of Security & Compliance: the global host, also after the move to the regional one
        (activity-feed.md §6.2)."""
        return f"https://{self.compliance_host}/.default" if self.compliance_host else None


# Sources: exchange-admin-api.md §1. DoD: the host and audience come from ScubaGear (outlook-dod.office365.us);
# Microsoft's ConnectionUri names webmail.apps.mil. Override with EXO_ENDPOINT if your tenant answers elsewhere.
# China (§10.11): partner.outlook.cn, not outlook.office365.cn. InvokeCommand is the ExchangeOnlineManagement
# module's own endpoint, and the module talks to it on partner.outlook.cn (ConnectionUri, token audience
# https://partner.outlook.cn); outlook.office365.cn comes only from the Admin API v2.0 docs, a different API
# surface with no InvokeCommand. Neither has been seen against a China tenant: set
# EXO_ENDPOINT=https://outlook.office365.cn if partner.outlook.cn does not answer (the token scope stays the cloud's).
# Graph hosts: Microsoft Graph national cloud deployments (GCC uses the global host).
# Management Activity API hosts (activity-feed.md §1.1): manage.office.com, manage.office365.us (GCC High) and
# manage.protection.apps.mil (DoD) are Microsoft's documented roots; China (21Vianet) is manage.office365.cn, from
# Microsoft's Sentinel connector ("GallatinPlan") and other public clients, not from the API reference [S]. GCC
# (manage-gcc.office.com) shares the global Exchange host, so it is no cloud of its own here: set
# O365_MANAGEMENT_ENDPOINT=https://manage-gcc.office.com (a known Microsoft host also moves the token scope).
# Security & Compliance (activity-feed.md §6.1-6.2): ps.compliance.protection.outlook.com (commercial, GCC),
# ps.compliance.protection.office365.us (GCC High and DoD) [S]; China is not in our sources: set IPPS_ENDPOINT.
CLOUDS: dict[str, Cloud] = {
    "global": Cloud(
        "global",
        "outlook.office365.com",
        "https://login.microsoftonline.com",
        "graph.microsoft.com",
        "manage.office.com",
        audit_query_api=True,
    ),
    "gcchigh": Cloud(
        "gcchigh",
        "outlook.office365.us",
        "https://login.microsoftonline.us",
        "graph.microsoft.us",
        "manage.office365.us",
        compliance_host="ps.compliance.protection.office365.us",
        federation_audience="api://AzureADTokenExchangeUSGov",
    ),
    "dod": Cloud(
        "dod",
        "outlook-dod.office365.us",
        "https://login.microsoftonline.us",
        "dod-graph.microsoft.us",
        "manage.protection.apps.mil",
        compliance_host="ps.compliance.protection.office365.us",
        federation_audience="api://AzureADTokenExchangeUSGov",
    ),
    "china": Cloud(
        "china",
        "partner.outlook.cn",
        "https://login.chinacloudapi.cn",
        "microsoftgraph.chinacloudapi.cn",
        "manage.office365.cn",
        compliance_host=None,
        federation_audience="api://AzureADTokenExchangeChina",
    ),
}
# Every Management Activity API host Microsoft runs: an O365_MANAGEMENT_ENDPOINT naming one of these is that API's
# own audience, so the token scope follows it (any other override, e.g. the emulator, keeps the cloud's scope).
MANAGEMENT_HOSTS: frozenset[str] = frozenset(
    {"manage.office.com", "manage-gcc.office.com", *(cloud.management_host for cloud in CLOUDS.values())}
)
