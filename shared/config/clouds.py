"""The Microsoft 365 clouds we know: Exchange host, token scope, login authority and Graph host, in one table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    """Where one Microsoft 365 cloud keeps Exchange Online and its login service."""

    name: str
    exchange_host: str
    authority: str
    graph_host: str = "graph.microsoft.com"

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


# Sources: exchange-admin-api.md §1. DoD: the host and audience come from ScubaGear (outlook-dod.office365.us);
# Microsoft's ConnectionUri names webmail.apps.mil. Override with EXO_ENDPOINT if your tenant answers elsewhere.
# China (§10.11): partner.outlook.cn, not outlook.office365.cn. InvokeCommand is the ExchangeOnlineManagement
# module's own endpoint, and the module talks to it on partner.outlook.cn (ConnectionUri, token audience
# https://partner.outlook.cn); outlook.office365.cn comes only from the Admin API v2.0 docs, a different API
# surface with no InvokeCommand. Neither has been seen against a China tenant: set
# EXO_ENDPOINT=https://outlook.office365.cn if partner.outlook.cn does not answer (the token scope stays the cloud's).
# Graph hosts: Microsoft Graph national cloud deployments (GCC uses the global host).
CLOUDS: dict[str, Cloud] = {
    "global": Cloud("global", "outlook.office365.com", "https://login.microsoftonline.com", "graph.microsoft.com"),
    "gcchigh": Cloud("gcchigh", "outlook.office365.us", "https://login.microsoftonline.us", "graph.microsoft.us"),
    "dod": Cloud("dod", "outlook-dod.office365.us", "https://login.microsoftonline.us", "dod-graph.microsoft.us"),
    "china": Cloud("china", "partner.outlook.cn", "https://login.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn"),
}
