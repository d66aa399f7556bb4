"""Every environment variable the app, the Functions host or the platform reads for it, declared once.

The loader (shared.config.loader) reads only names declared here; the README settings table, the settings section of
docs/telemetry.md and local.settings.example.json are generated from this list (scripts/settings_docs.py), and a
test fails when a committed copy differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "guid",
    "domain",
    "choice",
    "flag",
    "number",
    "text",
    "path",
    "url",
    "secret",
    "ncrontab",
    "connection string",
    "container name",
    "account name",
    "table name",
    "platform",
]
Group = Literal["exchange", "app", "telemetry", "policy", "tenants", "storage", "watch", "search", "host", "tools"]

GROUPS: dict[Group, str] = {
    "exchange": "Exchange connection",
    "app": "the timer's mode and who may remediate",
    "telemetry": "telemetry",
    "policy": "mailbox controls (a tenant of the register may override these for itself)",
    "tenants": 'many tenants: the tenants register and the queue fan-out (README "Many tenants")',
    "storage": "host storage and evidence archive",
    "watch": "the activity watch: the Office 365 Management Activity API feed and the detections (docs/detections.md)",
    "search": "`python -m shared search`: the audit log investigation search through Microsoft Graph "
    "(activity-feed.md §4)",
    "host": "read by the Functions host, its worker or azure-identity; never parsed by this code",
    "tools": "read by the command-line tools `grant-permissions` and `search` only (never by the functions)",
}


@dataclass(frozen=True)
class Setting:
    """One environment variable: what it is, its default, whether its value must never be shown."""

    name: str
    group: Group
    kind: Kind
    meaning: str  # Markdown, as in the README table
    default: str | None = None  # as documented (Markdown); None: no default
    secret: bool = False  # never logged, echoed in an error, or put in a repr
    example: str | None = ""  # value in local.settings.example.json; None: not set locally (Azure or platform only)
    choices: tuple[str, ...] = ()  # for kind "choice": the accepted values (case-insensitive)
    parsed: bool = True  # False: declared for the documentation, read by someone else (see `host`)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "FUNCTIONS_WORKER_RUNTIME",
        "host",
        "platform",
        "the Functions worker language (local `func start` only; Flex Consumption sets it from the site configuration)",
        example="python",
        parsed=False,
    ),
    Setting(
        "EXO_TENANT_ID", "exchange", "guid", "tenant GUID (required)", example="0b5c1c1e-1111-2222-3333-444455556666"
    ),
    Setting(
        "EXO_ORGANIZATION",
        "exchange",
        "domain",
        "initial domain, e.g. `contoso.onmicrosoft.com`",
        example="contoso.onmicrosoft.com",
    ),
    Setting(
        "EXO_AUTH_MODE",
        "exchange",
        "choice",
        "`managed_identity`, `certificate`, `secret` or `federated_identity` (many tenants, no stored secret: the "
        "managed identity's token for `api://AzureADTokenExchange` is the client assertion of the multi-tenant app "
        "`EXO_CLIENT_ID` in each customer tenant)",
        "`managed_identity`",
        example="secret",
        choices=("managed_identity", "certificate", "secret", "federated_identity"),
    ),
    Setting(
        "EXO_PERMISSION_MODEL",
        "exchange",
        "choice",
        "how the app holds its Exchange rights, stated in every evidence report: `role-group` (least privilege: "
        "Exchange RBAC role groups from `grant-permissions --exchange-roles`) or `entra-role` (the broader Entra role "
        "Exchange Administrator or Global Reader). Declared, not detected: the product cannot read its own role "
        "group membership without Role Management",
        "`entra-role`",
        example="role-group",
        choices=("role-group", "entra-role"),
    ),
    Setting(
        "EXO_CLIENT_ID",
        "exchange",
        "guid",
        "app (client) id; with managed identity, the user-assigned identity's client id (empty: system-assigned)",
        example="<app registration client id>",
    ),
    Setting(
        "EXO_CLIENT_SECRET",
        "exchange",
        "secret",
        "client secret (secret mode; local development only)",
        secret=True,
        example="<client secret: local development only; use certificate or managed identity otherwise>",
    ),
    Setting(
        "EXO_MANAGED_IDENTITY_CLIENT_ID",
        "exchange",
        "guid",
        "`federated_identity` mode: the client id of the user-assigned managed identity whose token is the client "
        "assertion (a federated credential of the app `EXO_CLIENT_ID`); empty: the system-assigned identity",
        example=None,
    ),
    Setting("EXO_CERTIFICATE_PATH", "exchange", "path", "PEM with private key and certificate (certificate mode)"),
    Setting(
        "EXO_CERTIFICATE_PASSWORD", "exchange", "secret", "password of that PEM's private key, if any", secret=True
    ),
    Setting(
        "EXO_CLOUD",
        "exchange",
        "choice",
        "`global`, `gcchigh`, `dod`, `china` (Exchange host, token scope, login authority)",
        "`global`",
        example="global",
        choices=("global", "gcchigh", "dod", "china"),
    ),
    Setting(
        "EXO_ENDPOINT",
        "exchange",
        "url",
        "override of the Exchange base URL (emulator, tests); plain http only for loopback",
        "the cloud's",
    ),
    Setting(
        "IPPS_ENDPOINT",
        "exchange",
        "url",
        "override of the Security & Compliance admin API base URL (`audit-retention-policy`; emulator, tests); plain "
        "http only for loopback. The token audience stays the cloud's",
        "the cloud's (`https://ps.compliance.protection.outlook.com`; GCC High/DoD `…office365.us`; none for `china`)",
        example=None,
    ),
    Setting("EXO_AUTHORITY", "exchange", "url", "override of the login authority (https only)", "the cloud's"),
    Setting(
        "EXO_OPERATION_DEADLINE_SECONDS",
        "exchange",
        "number",
        "time budget of one request including its retries",
        "`60`",
        example="60",
    ),
    Setting(
        "EXO_RETRY_BACKOFF_SECONDS",
        "exchange",
        "number",
        "base of the exponential backoff (full jitter, capped at 60 s)",
        "`2`",
        example="2",
    ),
    Setting(
        "AUDIT_RUN_DEADLINE_SECONDS",
        "exchange",
        "number",
        "time budget of a whole run; past it nothing more is "
        "sent and what is left is `Error` (HTTP runs are capped at 200 s, below the 230 s HTTP limit)",
        "`1500` (25 min, below the 30 min function timeout)",
        example="1500",
    ),
    Setting(
        "IDENTITY_ENDPOINT",
        "host",
        "platform",
        "set by the platform for managed identity (azure-identity reads it)",
        example=None,
        parsed=False,
    ),
    Setting(
        "IDENTITY_HEADER",
        "host",
        "platform",
        "set by the platform with `IDENTITY_ENDPOINT`",
        secret=True,
        example=None,
        parsed=False,
    ),
    Setting(
        "AUDIT_SCHEDULE",
        "host",
        "ncrontab",
        "NCRONTAB, six fields, UTC: when the daily check runs (read by the Functions host)",
        "`0 0 6 * * *`",
        example="0 0 6 * * *",
        parsed=False,
    ),
    Setting(
        "WATCH_SCHEDULE",
        "host",
        "ncrontab",
        "NCRONTAB, six fields, UTC: when the activity watch's timer (`activity_watch`) reads the audit feed "
        "(read by the Functions host)",
        "`0 */10 * * * *` (every 10 minutes)",
        example="0 */10 * * * *",
        parsed=False,
    ),
    Setting(
        "AUDIT_MODE",
        "app",
        "choice",
        "`report` (only report) or `remediate` (the timer also fixes what is safe "
        "unattended and still checks the rest; never a revert)",
        "`report`",
        example="report",
        choices=("report", "remediate"),
    ),
    Setting(
        "REMEDIATION_ALLOW_KEY_ONLY",
        "app",
        "flag",
        "`true`: a function key alone authorises remediation (weaker, see below)",
        "`false`",
        example="false",
    ),
    Setting(
        "WEBSITE_AUTH_ENABLED",
        "app",
        "flag",
        "set by App Service when its authentication is on; remediation trusts the principal headers only then",
        example="false",
    ),
    Setting(
        "TELEMETRY_INCLUDE_IDENTITIES",
        "telemetry",
        "flag",
        "`true`: real mailbox names in telemetry instead of pseudonyms",
        "`false`",
        example="false",
    ),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING", "telemetry", "connection string", "where telemetry goes", secret=True
    ),
    Setting(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "host",
        "text",
        "`ClientId=<uami>;Authorization=AAD` in "
        "Azure: Entra ID authentication of the ingestion (read by the worker's exporter)",
        example=None,
        parsed=False,
    ),
    Setting(
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        "telemetry",
        "flag",
        "`true` in Azure: the Functions worker sets the exporter up",
        example="false",
    ),
    Setting(
        "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME",
        "host",
        "text",
        "`mailbox_audit_guard`: the logger the worker exports",
        example="mailbox_audit_guard",
        parsed=False,
    ),
    Setting(
        "TELEMETRY_STORAGE_DIRECTORY",
        "telemetry",
        "path",
        "where unsent telemetry waits for the next run (offline storage)",
        "the exporter's temp dir",
    ),
    Setting(
        "TELEMETRY_PSEUDONYM_KEY",
        "telemetry",
        "secret",
        "key of the mailbox pseudonyms in telemetry (use a Key "
        "Vault reference); unset: the tenant id, stable but guessable",
        secret=True,
    ),
    Setting(
        "MAILBOX_AUDIT_BASELINE",
        "policy",
        "choice",
        "`cis`, `cis-v4` or `microsoft-default`",
        "`cis`",
        example="cis",
        choices=("cis", "cis-v4", "microsoft-default"),
    ),
    Setting(
        "MAILBOX_AUDIT_MIN_RETENTION_DAYS",
        "policy",
        "number",
        "minimum `AuditLogAgeLimit` in days (CIS v5+ remediation uses 180)",
        "`90`",
        example="90",
    ),
    Setting(
        "MAILBOX_AUDIT_INCLUDE_SHARED",
        "policy",
        "flag",
        "also list shared mailboxes' action gaps (report-only)",
        "`false`",
        example="false",
    ),
    Setting(
        "MAILBOX_AUDIT_CHECK_EXPLICIT_ENABLE",
        "policy",
        "flag",
        "also count user mailboxes not explicitly audit-enabled (one more query)",
        "`false`",
        example="false",
    ),
    Setting(
        "MAILBOX_REMEDIATION_WRITES_PER_SECOND",
        "policy",
        "number",
        "pace of per-mailbox writes (stays under throttling)",
        "`2`",
        example="2",
    ),
    Setting(
        "REMEDIATION_VERIFY_SECONDS",
        "policy",
        "number",
        "how long a remediation keeps reading back a write that does not show yet (replication lag), with growing "
        "pauses (10, 20, 40 s...), never more than half the time the run has left; then the outcome is "
        "`Unverified` and the next run verifies (0 to 900)",
        "`120`",
        example="120",
    ),
    Setting(
        "AUDIT_RETENTION_POLICY_CHECK",
        "policy",
        "flag",
        "`true`: also run `audit-retention-policy` (Purview audit retention policies on the Security & Compliance "
        "endpoint). Off by default: reading them needs the Purview role Organization Configuration (a Security & "
        "Compliance role group, `grant-permissions --exchange-roles ... --retention-policy`, or the Entra role "
        "Compliance Data Administrator), which can also delete them (see Permissions)",
        "`false`",
        example="false",
    ),
    Setting(
        "AUDIT_MIN_SEARCH_RETENTION_DAYS",
        "policy",
        "number",
        "`audit-retention-policy`: minimum effective retention in days of the Exchange audit records in audit search "
        "(1 to 3650; CISA MS.SECURITYSUITE.5.2v1: 12 months; Audit Standard keeps 180 days without a policy)",
        "`365`",
        example="365",
    ),
    Setting("AUDIT_EXCEPTIONS_FILE", "policy", "path", "the written-exception register (JSON, see above)"),
    Setting(
        "AUDIT_CANARY_MAILBOX",
        "policy",
        "text",
        "the mailbox set aside for the `audit-pipeline` canary (e.g. a shared mailbox: UPN, SMTP address or name); "
        "each check run that includes the control writes one canary to it, the only write a check ever makes; "
        "unset: the control is not run (and the run says why)",
        example=None,
    ),
    Setting(
        "AUDIT_CANARY_WRITE",
        "policy",
        "choice",
        "how the canary is written: `custom-attribute` (`Set-Mailbox -<AUDIT_CANARY_ATTRIBUTE>`, needs the broad "
        "Mail Recipients role) or `audit-property` (the nonce in the sub-day part of the canary mailbox's "
        "`AuditLogAgeLimit`, whole days kept, never below the minimum: needs only Audit Logs)",
        "`custom-attribute`",
        example="custom-attribute",
        choices=("custom-attribute", "audit-property"),
    ),
    Setting(
        "AUDIT_CANARY_ATTRIBUTE",
        "policy",
        "choice",
        "the custom attribute the `custom-attribute` canary writes (`CustomAttribute1` to `CustomAttribute15`)",
        "`CustomAttribute15`",
        example="CustomAttribute15",
        choices=tuple(f"CustomAttribute{n}" for n in range(1, 16)),
    ),
    Setting(
        "AUDIT_CANARY_MAX_DELAY_HOURS",
        "policy",
        "number",
        "how long after its write the canary's audit record must be seen in the feed, in hours (fractions "
        "accepted, 0.0001 to 168)",
        "`24`",
        example="24",
    ),
    Setting(
        "AUDIT_TENANTS_FILE",
        "tenants",
        "path",
        "the tenants register for the command line (JSON list of `tenant_id`, `organization`, `cloud`, "
        '`display_name`, `settings`; see "Many tenants"): `--tenant ID` and `check --all-tenants` pick from it; '
        "the Function App reads it too when set, instead of its table",
        example=None,
    ),
    Setting(
        "AUDIT_TENANTS_TABLE",
        "tenants",
        "table name",
        "the Function App's tenants register: the table in the app's storage account (`AzureWebJobsStorage`); "
        "absent or empty: the single tenant of the `EXO_*` settings, as before",
        "`tenants`",
        example=None,
    ),
    Setting(
        "WATCH_LEARNING_DAYS",
        "watch",
        "number",
        "days of history (event time, so a backfill counts) before the pair- and location-based detections "
        "(`send-as`, `non-owner-access`, `unusual-location`, `impossible-travel`) alert on something new (0 to 90)",
        "`7`",
        example="7",
    ),
    Setting(
        "WATCH_BASELINE_DAYS",
        "watch",
        "number",
        "how long a country, an (actor, mailbox) pair or an hourly delete count stays in a user's baseline (1 to 180)",
        "`14`",
        example="14",
    ),
    Setting(
        "WATCH_MASS_DELETE_PER_HOUR",
        "watch",
        "number",
        "`mass-delete`: items one actor deletes (HardDelete, SoftDelete, MoveToDeletedItems) in one hour that always "
        "alert (1 to 1000000)",
        "`100`",
        example="100",
    ),
    Setting(
        "WATCH_TRAVEL_KMH",
        "watch",
        "number",
        "`impossible-travel`: the speed between two sign-ins over 500 km that alerts (100 to 20000)",
        "`900`",
        example="900",
    ),
    Setting(
        "WATCH_GEOIP_DB",
        "watch",
        "path",
        "a MaxMind-format `.mmdb` (GeoLite2 City or DB-IP City Lite) to use instead of the built-in country data: "
        "with coordinates, `impossible-travel` measures distances",
        "the `iptocc` package's RIR data",
    ),
    Setting(
        "AzureWebJobsStorage",
        "storage",
        "connection string",
        "the app's storage account as a connection string "
        "(Azurite, local development): host state, the tenant write lock and the evidence archive",
        secret=True,
        example="UseDevelopmentStorage=true",
    ),
    Setting(
        "AzureWebJobsStorage__accountName",
        "storage",
        "account name",
        "identity-based storage instead (Azure): the account on the public cloud's `blob.core.windows.net`",
        example=None,
    ),
    Setting(
        "AzureWebJobsStorage__blobServiceUri",
        "storage",
        "url",
        "identity-based storage on another cloud: the blob endpoint (https, no SAS)",
        example=None,
    ),
    Setting(
        "AzureWebJobsStorage__tableServiceUri",
        "storage",
        "url",
        "identity-based storage on another cloud: the table endpoint of the activity watch's state (https, no SAS; "
        "with `__accountName` the public cloud's `table.core.windows.net`)",
        example=None,
    ),
    Setting(
        "AzureWebJobsStorage__credential",
        "storage",
        "choice",
        "`managedidentity` (the only kind supported)",
        "`managedidentity`",
        example=None,
        choices=("managedidentity",),
    ),
    Setting(
        "AzureWebJobsStorage__clientId",
        "storage",
        "text",
        "client id of the user-assigned identity for storage (empty: system-assigned)",
        example=None,
    ),
    Setting(
        "EVIDENCE_CONTAINER",
        "storage",
        "container name",
        "blob container of the evidence archive in the app's storage account (`AzureWebJobsStorage`)",
        "`evidence`",
        example="evidence",
    ),
    Setting(
        "O365_MANAGEMENT_ENDPOINT",
        "watch",
        "url",
        "override of the Office 365 Management Activity API base URL (emulator, tests); plain http only for "
        "loopback. A Microsoft host (e.g. `https://manage-gcc.office.com` for GCC) also sets the token scope",
        "the cloud's (`https://manage.office.com` for `global`)",
        example=None,
    ),
    Setting(
        "O365_PUBLISHER_ID",
        "watch",
        "guid",
        "`PublisherIdentifier` sent on every feed call (the tenant GUID of whoever runs the code; it selects the "
        "throttling pool)",
        "`EXO_TENANT_ID`",
        example=None,
    ),
    Setting(
        "WATCH_CONTENT_TYPES",
        "watch",
        "text",
        "comma-separated feed content types to read: `Audit.Exchange`, `Audit.AzureActiveDirectory`, "
        "`Audit.SharePoint`, `Audit.General`, `DLP.All`",
        "`Audit.Exchange,Audit.AzureActiveDirectory`",
        example="Audit.Exchange,Audit.AzureActiveDirectory",
    ),
    Setting(
        "WATCH_STATE_PATH",
        "watch",
        "path",
        "the command line's watch state (SQLite file; `--state PATH` overrides it)",
        "`$XDG_STATE_HOME/mailbox-audit-guard/watch.sqlite3`",
        example=None,
    ),
    Setting(
        "XDG_STATE_HOME",
        "watch",
        "path",
        "the user's state directory (XDG); the default watch state lives under it",
        "`~/.local/state`",
        example=None,
    ),
    Setting(
        "WATCH_TABLE_NAME",
        "watch",
        "table name",
        "the Function App's watch state: the table in the app's storage account (`AzureWebJobsStorage`), created "
        "on first use",
        "`MailboxAuditWatch`",
        example="MailboxAuditWatch",
    ),
    Setting(
        "WATCH_FIRST_LOOKBACK_HOURS",
        "watch",
        "number",
        "how far back the first pass reads the feed, in hours (1 to 168; the feed keeps content 7 days)",
        "`24`",
        example="24",
    ),
    Setting(
        "GRAPH_ENDPOINT",
        "tools",
        "url",
        "override of the Microsoft Graph base URL for `grant-permissions` and `search` "
        "(emulator, tests); plain http only for loopback",
        "the cloud's",
        example=None,
    ),
    Setting(
        "GRAPH_AUDIT_API_VERSION",
        "search",
        "choice",
        "Graph version of the audit log query API: `beta` (Microsoft moved it back there, MC1052169) or `v1.0`",
        "`beta`",
        example=None,
        choices=("beta", "v1.0"),
    ),
    Setting(
        "AUDIT_SEARCH_MAX_DAYS",
        "search",
        "number",
        "how far back `search` may start, in days (1 to 3650): the tenant's audit retention (180 days for most "
        "licences; 365 or more with Audit Premium or an audit retention policy). A window starting earlier is "
        "refused before anything is sent",
        "`180`",
        example=None,
    ),
    Setting(
        "GRAPH_AUDIT_MIN_SLICE_MINUTES",
        "search",
        "number",
        "the smallest time slice `search` halves a window down to when a query exceeds its record limit, in "
        "minutes (0.1 to 1440); a slice this small that still exceeds the limit makes the export incomplete",
        "`1`",
        example=None,
    ),
    Setting(
        "GRAPH_AUDIT_QUERY_TIMEOUT_MINUTES",
        "search",
        "number",
        "how long `search` waits for one audit log query to finish, in minutes (1 to 1440), polling with growing "
        "pauses; past it the query's slice is reported missing",
        "`30`",
        example=None,
    ),
    Setting(
        "GRAPH_AUDIT_POLL_SECONDS",
        "search",
        "number",
        "the first pause between two status polls of a query, in seconds (0 to 300); each later pause is 1.5 "
        "times longer, at most 60 s (or this, if larger)",
        "`5`",
        example=None,
    ),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
assert len(BY_NAME) == len(SETTINGS), "a setting is declared twice"


class Env:
    """The environment as the loader sees it: only declared names can be read (anything else is a bug)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = mapping

    def raw(self, name: str) -> str:
        """The value as set ('' when unset)."""
        if name not in BY_NAME or not BY_NAME[name].parsed:
            raise KeyError(f"{name} is not a declared setting of this app (shared/config/declaration.py)")
        return self._mapping.get(name, "")

    def get(self, name: str) -> str | None:
        """The value without surrounding white space; None when unset or blank."""
        return self.raw(name).strip() or None
