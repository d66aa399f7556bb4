"""One run's settings: every declared variable parsed once into one frozen object, every problem named.

`load` is the only place the app turns environment variables into values (the Functions host and azure-identity
read theirs themselves, see shared.config.declaration). A bad value of any setting is a ConfigError naming it;
values are never echoed, so a secret in the wrong variable stays secret.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from shared.config.clouds import CLOUDS, MANAGEMENT_HOSTS
from shared.config.declaration import Env
from shared.config.settings import (
    AppSettings,
    AuditPolicy,
    ConfigError,
    Settings,
    check_base_url,
    flag,
    is_loopback_host,
    number,
    parse_app,
    parse_exchange,
    parse_policy,
)

STORAGE = "AzureWebJobsStorage"
DEFAULT_CONTAINER = "evidence"
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
BAD_CONNECTION_STRING = (
    "is not a usable storage connection string (expected key=value pairs separated by ';' "
    "naming the account or its BlobEndpoint, or UseDevelopmentStorage=true)"
)
CONTAINER_RULES = "3-63 lowercase letters, digits and single hyphens, starting with a letter or digit"
# The Management Activity API's content types (activity-feed.md §1.2), in its own spelling.
CONTENT_TYPES = ("Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General", "DLP.All")
DEFAULT_CONTENT_TYPES = ("Audit.Exchange", "Audit.AzureActiveDirectory")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DEFAULT_WATCH_TABLE = "MailboxAuditWatch"
_TABLE = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
TABLE_RULES = "3-63 letters and digits, starting with a letter"
DEFAULT_TENANTS_TABLE = "tenants"
STATE_FILE = Path("mailbox-audit-guard") / "watch.sqlite3"
MAX_FIRST_LOOKBACK_HOURS = 168  # the feed keeps content 7 days


@dataclass(frozen=True)
class TelemetrySettings:
    """Where telemetry goes and how identities in it are disguised."""

    connection_string: str | None = field(default=None, repr=False)
    worker_exports: bool = False  # the Functions worker sets the exporter up (PYTHON_APPLICATIONINSIGHTS_...)
    storage_directory: str | None = None
    include_identities: bool = False
    pseudonym_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StorageSettings:
    """The function app's storage account (lock and evidence archive): a connection string or identity-based."""

    connection_string: str | None = field(default=None, repr=False)
    blob_service_uri: str | None = None
    account_name: str | None = None
    client_id: str | None = None
    container: str = DEFAULT_CONTAINER
    table_service_uri: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.connection_string or self.blob_service_uri or self.account_name)

    @property
    def blob_url(self) -> str | None:
        """The blob endpoint of identity-based access (None with a connection string or no storage)."""
        if self.connection_string:
            return None
        if self.blob_service_uri:
            return self.blob_service_uri
        return f"https://{self.account_name}.blob.core.windows.net" if self.account_name else None

    @property
    def has_tables(self) -> bool:
        """Whether these settings reach a Table service at all (a connection string may name only a blob endpoint)."""
        if self.connection_string:
            keys = {part.split("=", 1)[0].strip().lower() for part in self.connection_string.split(";") if "=" in part}
            return bool(keys & {"tableendpoint", "usedevelopmentstorage"}) or (
                "accountname" in keys and not keys & {"blobendpoint", "queueendpoint", "fileendpoint"}
            )
        return self.table_url is not None

    @property
    def table_url(self) -> str | None:
        """The table endpoint of identity-based access (None with a connection string, no storage, or a blob
        endpoint on another cloud without `__tableServiceUri`)."""
        if self.connection_string:
            return None
        if self.table_service_uri:
            return self.table_service_uri
        if self.account_name and not self.blob_service_uri:
            return f"https://{self.account_name}.table.core.windows.net"
        return None


@dataclass(frozen=True)
class WatchStateSettings:
    """Where the activity watch keeps its state and how far its first pass reads back."""

    state_path: Path | None = None  # the command line's SQLite file (None: default_state_path)
    table_name: str = DEFAULT_WATCH_TABLE  # the Function App's table
    first_lookback_hours: float = 24.0
    state_home: Path | None = None  # XDG_STATE_HOME as set

    def sqlite_path(self, override: str | None = None) -> Path:
        """`--state PATH`, else WATCH_STATE_PATH, else $XDG_STATE_HOME/..., else ~/.local/state/..."""
        if override:
            return Path(override).expanduser()
        if self.state_path is not None:
            return self.state_path
        return (self.state_home or Path.home() / ".local" / "state") / STATE_FILE


@dataclass(frozen=True)
class TenantsSettings:
    """Where the tenants register is: a file (the command line; the Function App too when set), else the table."""

    file: Path | None = None
    table_name: str = DEFAULT_TENANTS_TABLE


@dataclass(frozen=True)
class FeedSettings:
    """Where and how the activity watch reads the Office 365 Management Activity API."""

    base_url: str  # scheme://host[:port], no path: the feed is under {base_url}/api/v1.0/{tenant}/activity/feed
    scope: str  # the token scope: https://{management host}/.default
    publisher_id: str  # PublisherIdentifier, sent on every call
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES


@dataclass(frozen=True)
class SearchSettings:
    """Where and how `python -m shared search` queries the audit log through Microsoft Graph (activity-feed.md §4)."""

    graph_url: str  # scheme://host[:port]: the cloud's Graph host, or GRAPH_ENDPOINT
    scope: str  # the cloud's Graph token scope
    cloud_name: str
    api_available: bool  # False: the cloud has no audit log query API (national clouds)
    api_version: str = "beta"
    max_days: float = 180.0
    min_slice_minutes: float = 1.0
    query_timeout_minutes: float = 30.0
    poll_seconds: float = 5.0


@dataclass(frozen=True)
class WatchPolicy:
    """What the activity watch's detections judge by (docs/detections.md)."""

    learning_days: float = 7.0  # event time: a history backfill counts
    baseline_days: float = 14.0
    mass_delete_per_hour: int = 100
    travel_kmh: float = 900.0
    travel_min_km: float = 500.0  # not a setting: below this, travel is never "impossible" (VPNs, dual-stack paths)
    geoip_db: Path | None = None


@dataclass(frozen=True)
class RunSettings:
    """Everything one run needs from the environment, parsed and checked."""

    exchange: Settings
    policy: AuditPolicy
    app: AppSettings
    telemetry: TelemetrySettings
    storage: StorageSettings
    feed: FeedSettings
    watch: WatchPolicy = field(default_factory=WatchPolicy)
    watch_state: WatchStateSettings = field(default_factory=WatchStateSettings)
    search: SearchSettings | None = None  # the command line's `search` (parsed here so a bad value is refused early)
    tenants: TenantsSettings = field(default_factory=TenantsSettings)


def parse_telemetry(env: Env, problems: dict[str, str]) -> TelemetrySettings:
    """Telemetry settings; always usable (a bad flag counts as false here) so even a refused run is exported."""
    return TelemetrySettings(
        connection_string=env.get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
        worker_exports=flag(env, "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", problems),
        storage_directory=env.raw("TELEMETRY_STORAGE_DIRECTORY") or None,
        include_identities=flag(env, "TELEMETRY_INCLUDE_IDENTITIES", problems),
        pseudonym_key=env.raw("TELEMETRY_PSEUDONYM_KEY") or None,
    )


def container_problem(name: str) -> str | None:
    """What is wrong with a blob container name (Azure's naming rules), or None."""
    return None if _CONTAINER.match(name) else f"is not a valid container name ({CONTAINER_RULES})"


def service_uri_problem(value: str) -> str | None:
    """What is wrong with an identity-based blob endpoint, or None."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL, e.g. https://<account>.blob.core.windows.net"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "must use https (plain http is allowed only for loopback addresses)"
    if parts.query or parts.username or parts.password:
        return "must not carry credentials or a query (a SAS token); identity-based access uses the managed identity"
    return None


def connection_string_problem(value: str) -> str | None:
    """The shape azure-storage-blob accepts: key=value pairs naming the account or its blob endpoint."""
    pairs = [part.split("=", 1) for part in value.rstrip(";").split(";")]
    keys = {pair[0].strip().lower() for pair in pairs if len(pair) == 2}
    if len(keys) == len(pairs) and keys & {"usedevelopmentstorage", "blobendpoint", "accountname"}:
        return None
    return BAD_CONNECTION_STRING


def parse_storage(env: Env, problems: dict[str, str]) -> StorageSettings:
    """The storage settings, checked as far as possible without a request; problems named by variable."""
    bad: dict[str, str] = {}
    connection = env.get(STORAGE)
    service_uri = env.get(f"{STORAGE}__blobServiceUri")
    table_uri = env.get(f"{STORAGE}__tableServiceUri")
    account = env.get(f"{STORAGE}__accountName")
    if connection:
        if (problem := connection_string_problem(connection)) is not None:
            bad[STORAGE] = problem
    elif service_uri or account:
        if (env.get(f"{STORAGE}__credential") or "managedidentity").lower() != "managedidentity":
            bad[f"{STORAGE}__credential"] = "must be 'managedidentity' for identity-based storage access"
        if service_uri:
            if (problem := service_uri_problem(service_uri)) is not None:
                bad[f"{STORAGE}__blobServiceUri"] = problem
        elif account is not None and not _ACCOUNT.fullmatch(account):
            bad[f"{STORAGE}__accountName"] = "is not a storage account name (3-24 lowercase letters/digits)"
    if table_uri and (problem := service_uri_problem(table_uri)) is not None:
        bad[f"{STORAGE}__tableServiceUri"] = problem.replace("blob.core", "table.core")
    container = env.get("EVIDENCE_CONTAINER") or DEFAULT_CONTAINER
    if (problem := container_problem(container)) is not None:
        bad["EVIDENCE_CONTAINER"] = problem
    problems.update(bad)
    return StorageSettings(
        connection_string=connection,
        blob_service_uri=service_uri,
        account_name=account,
        client_id=env.get(f"{STORAGE}__clientId"),
        container=container,
        table_service_uri=table_uri,
    )


def parse_watch_state(env: Env, problems: dict[str, str]) -> WatchStateSettings:
    """The watch state's settings; problems are recorded under their variable's name (defaults stand in)."""
    bad: dict[str, str] = {}
    table = env.get("WATCH_TABLE_NAME") or DEFAULT_WATCH_TABLE
    if not _TABLE.fullmatch(table):
        bad["WATCH_TABLE_NAME"] = f"is not a valid table name ({TABLE_RULES})"
    hours = 24.0
    if (raw := env.get("WATCH_FIRST_LOOKBACK_HOURS")) is not None:
        try:
            hours = float(raw)
        except ValueError:
            hours = math.nan
        if not 1 <= hours <= MAX_FIRST_LOOKBACK_HOURS:
            bad["WATCH_FIRST_LOOKBACK_HOURS"] = f"must be a number of hours between 1 and {MAX_FIRST_LOOKBACK_HOURS}"
            hours = 24.0
    paths: dict[str, Path | None] = {}
    for name in ("WATCH_STATE_PATH", "XDG_STATE_HOME"):
        value = env.get(name)
        paths[name] = Path(value).expanduser() if value else None
    home = paths["XDG_STATE_HOME"]
    if home is not None and not home.is_absolute():
        home = None  # the XDG rule: a relative XDG_STATE_HOME is invalid and ignored
    problems.update(bad)
    return WatchStateSettings(
        state_path=paths["WATCH_STATE_PATH"],
        table_name=table if _TABLE.fullmatch(table) else DEFAULT_WATCH_TABLE,
        first_lookback_hours=hours,
        state_home=home,
    )


def parse_tenants_settings(env: Env, problems: dict[str, str]) -> TenantsSettings:
    """Where the register is; problems named by variable (the file itself is read by shared.config.tenants)."""
    table = env.get("AUDIT_TENANTS_TABLE") or DEFAULT_TENANTS_TABLE
    if not _TABLE.fullmatch(table):
        problems["AUDIT_TENANTS_TABLE"] = f"is not a valid table name ({TABLE_RULES})"
        table = DEFAULT_TENANTS_TABLE
    raw = env.get("AUDIT_TENANTS_FILE")
    return TenantsSettings(file=Path(raw).expanduser() if raw else None, table_name=table)


def tenants_for(env: Mapping[str, str]) -> TenantsSettings:
    """The register's location alone (ConfigError names a bad setting): a deployment of many tenants needs no
    EXO_TENANT_ID of its own."""
    problems: dict[str, str] = {}
    settings = parse_tenants_settings(Env(env), problems)
    if problems:
        raise ConfigError(problems)
    return settings


def parse_feed(env: Env, problems: dict[str, str], exchange: Settings | None) -> FeedSettings:
    """The feed settings (defaults from the connection settings' cloud and tenant); problems named by variable."""
    bad: dict[str, str] = {}
    cloud = exchange.cloud if exchange is not None else CLOUDS["global"]
    scope = cloud.management_scope
    base_url = env.get("O365_MANAGEMENT_ENDPOINT") or cloud.management_url
    if (problem := check_base_url(base_url, allow_loopback_http=True)) is not None:
        bad["O365_MANAGEMENT_ENDPOINT"] = problem
    else:
        host = (urlsplit(base_url).hostname or "").lower()
        if host in MANAGEMENT_HOSTS:
            scope = f"https://{host}/.default"  # a Microsoft host is its own audience (GCC: manage-gcc.office.com)
    publisher_id = env.get("O365_PUBLISHER_ID") or (exchange.tenant_id if exchange is not None else "")
    if env.get("O365_PUBLISHER_ID") is not None and not _GUID.match(publisher_id):
        bad["O365_PUBLISHER_ID"] = "must be a tenant GUID (yours, as the publisher), e.g. 0b5c1c1e-1111-2222-..."
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    raw_types = env.get("WATCH_CONTENT_TYPES")
    if raw_types is not None:
        canonical = {name.lower(): name for name in CONTENT_TYPES}
        chosen: list[str] = []
        unknown: list[str] = []
        for item in (part.strip() for part in raw_types.split(",")):
            if not item:
                continue
            name = canonical.get(item.lower())
            if name is None:
                unknown.append(item)
            elif name not in chosen:
                chosen.append(name)
        if unknown or not chosen:
            bad["WATCH_CONTENT_TYPES"] = f"must be a comma-separated list of {', '.join(CONTENT_TYPES)}" + (
                f" (not {', '.join(repr(u[:40]) for u in unknown[:3])})" if unknown else ""
            )
        else:
            content_types = tuple(chosen)
    problems.update(bad)
    return FeedSettings(
        base_url=base_url.rstrip("/"), scope=scope, publisher_id=publisher_id.lower(), content_types=content_types
    )


def parse_watch(env: Env, problems: dict[str, str]) -> WatchPolicy:
    """The detections' settings; problems are recorded under their variable's name (defaults stand in)."""
    bad: dict[str, str] = {}
    learning = number(env.get("WATCH_LEARNING_DAYS"), 7, 0, 90, "WATCH_LEARNING_DAYS", bad)
    baseline = number(env.get("WATCH_BASELINE_DAYS"), 14, 1, 180, "WATCH_BASELINE_DAYS", bad)
    per_hour = number(env.get("WATCH_MASS_DELETE_PER_HOUR"), 100, 1, 1_000_000, "WATCH_MASS_DELETE_PER_HOUR", bad)
    if per_hour != int(per_hour):
        bad["WATCH_MASS_DELETE_PER_HOUR"] = "must be a whole number between 1 and 1000000"
    kmh = number(env.get("WATCH_TRAVEL_KMH"), 900, 100, 20_000, "WATCH_TRAVEL_KMH", bad)
    geoip_db = None
    if (raw_db := env.get("WATCH_GEOIP_DB")) is not None:
        geoip_db = Path(raw_db)
        try:
            readable = geoip_db.is_file()
        except OSError:  # a name too long, a NUL: not a file either
            readable = False
        if not readable:
            bad["WATCH_GEOIP_DB"] = "file not found or not readable (a MaxMind-format .mmdb)"
        elif geoip_db.suffix.lower() != ".mmdb":
            bad["WATCH_GEOIP_DB"] = "must be a MaxMind-format database ending in .mmdb"
    problems.update(bad)
    return WatchPolicy(
        learning_days=learning,
        baseline_days=baseline,
        mass_delete_per_hour=int(per_hour),
        travel_kmh=kmh,
        geoip_db=geoip_db if "WATCH_GEOIP_DB" not in bad else None,
    )


def load(
    env: Mapping[str, str] | None = None, *, today: date | None = None, exchange: Settings | None = None
) -> RunSettings:
    """Parse every setting once; ConfigError names every bad variable. `exchange`: connection settings the caller
    already parsed (the CLI, which must refuse them before anything else)."""
    reader = Env(os.environ if env is None else env)
    problems: dict[str, str] = {}
    parsed_exchange = exchange or parse_exchange(reader, problems)
    app = parse_app(reader, problems)
    policy = parse_policy(reader, problems, today)
    telemetry = parse_telemetry(reader, problems)
    storage = parse_storage(reader, problems)
    feed = parse_feed(reader, problems, parsed_exchange)
    watch = parse_watch(reader, problems)
    watch_state = parse_watch_state(reader, problems)
    search = parse_search(reader, problems, parsed_exchange)
    tenants = parse_tenants_settings(reader, problems)
    if problems or parsed_exchange is None:
        raise ConfigError(problems)
    return RunSettings(
        exchange=parsed_exchange,
        policy=policy,
        app=app,
        telemetry=telemetry,
        storage=storage,
        feed=feed,
        watch=watch,
        watch_state=watch_state,
        search=search,
        tenants=tenants,
    )


def feed_settings(env: Mapping[str, str], exchange: Settings) -> FeedSettings:
    """Only the feed settings, for a caller that already holds the connection settings; ConfigError when bad."""
    problems: dict[str, str] = {}
    feed = parse_feed(Env(env), problems, exchange)
    if problems:
        raise ConfigError(problems)
    return feed


def parse_search(env: Env, problems: dict[str, str], exchange: Settings | None) -> SearchSettings:
    """The search's settings (the Graph host and scope from the connection settings' cloud); problems by name.

    GRAPH_ENDPOINT is checked by `search_settings` only: the functions never call Graph."""
    bad: dict[str, str] = {}
    cloud = exchange.cloud if exchange is not None else CLOUDS["global"]
    version = (env.get("GRAPH_AUDIT_API_VERSION") or "beta").lower()
    if version not in ("beta", "v1.0"):
        bad["GRAPH_AUDIT_API_VERSION"] = "must be beta or v1.0"
        version = "beta"
    search = SearchSettings(
        graph_url=cloud.graph_url,
        scope=cloud.graph_scope,
        cloud_name=cloud.name,
        api_available=cloud.audit_query_api,
        api_version=version,
        max_days=number(env.get("AUDIT_SEARCH_MAX_DAYS"), 180, 1, 3650, "AUDIT_SEARCH_MAX_DAYS", bad, unit="days"),
        min_slice_minutes=number(
            env.get("GRAPH_AUDIT_MIN_SLICE_MINUTES"), 1, 0.1, 1440, "GRAPH_AUDIT_MIN_SLICE_MINUTES", bad, unit="minutes"
        ),
        query_timeout_minutes=number(
            env.get("GRAPH_AUDIT_QUERY_TIMEOUT_MINUTES"),
            30,
            1,
            1440,
            "GRAPH_AUDIT_QUERY_TIMEOUT_MINUTES",
            bad,
            unit="minutes",
        ),
        poll_seconds=number(
            env.get("GRAPH_AUDIT_POLL_SECONDS"), 5, 0, 300, "GRAPH_AUDIT_POLL_SECONDS", bad, unit="seconds"
        ),
    )
    problems.update(bad)
    return search


def search_settings(env: Mapping[str, str], exchange: Settings) -> SearchSettings:
    """The search's settings for a caller that holds the connection settings, GRAPH_ENDPOINT applied; ConfigError
    names every bad one."""
    reader = Env(env)
    problems: dict[str, str] = {}
    search = parse_search(reader, problems, exchange)
    graph_url = (reader.get("GRAPH_ENDPOINT") or search.graph_url).rstrip("/")
    if (problem := check_base_url(graph_url, allow_loopback_http=True)) is not None:
        problems["GRAPH_ENDPOINT"] = problem
    if problems:
        raise ConfigError(problems)
    return replace(search, graph_url=graph_url)


def watch_state_for(env: Mapping[str, str]) -> WatchStateSettings:
    """The watch state's settings alone (ConfigError names a bad one), for callers that need no Exchange settings."""
    problems: dict[str, str] = {}
    settings = parse_watch_state(Env(env), problems)
    if problems:
        raise ConfigError(problems)
    return settings


def try_load(env: Mapping[str, str] | None = None, *, exchange: Settings | None = None) -> RunSettings | ConfigError:
    """`load`, with a refusal returned rather than raised: a run that cannot start must still be reported."""
    try:
        return load(env, exchange=exchange)
    except ConfigError as error:
        return error


def telemetry_for(env: Mapping[str, str]) -> TelemetrySettings:
    """Telemetry settings even when other settings are bad: the refused run must still reach Application Insights."""
    return parse_telemetry(Env(env), {})


def storage_for(env: Mapping[str, str]) -> StorageSettings | None:
    """Storage settings even when other settings are bad (a refused run is archived too); None when they are bad."""
    problems: dict[str, str] = {}
    storage = parse_storage(Env(env), problems)
    return None if problems else storage


def reported_tenant(env: Mapping[str, str]) -> str:
    """The tenant id a refused run is reported under: as set (it may be what is wrong), or `unknown`."""
    return (Env(env).raw("EXO_TENANT_ID") or "unknown").strip().lower()


@dataclass(frozen=True)
class GraphTarget:
    """Where `grant-permissions` talks to Microsoft Graph: the cloud and its Graph base URL, or what is wrong."""

    cloud_name: str
    graph_url: str
    problem: str | None = None  # "VARIABLE: what is wrong", for the command to report before anything is sent
    exchange_url: str = ""  # EXO_ENDPOINT or the cloud's Exchange host: where --exchange-roles signs in
    # IPPS_ENDPOINT or the cloud's Security & Compliance host (None: none known): --exchange-roles --retention-policy
    compliance_url: str | None = None
    # AUDIT_CANARY_MAILBOX set and AUDIT_CANARY_WRITE=custom-attribute: the remediate role group needs Mail Recipients
    canary_needs_mail_recipients: bool = False


def graph_target(env: Mapping[str, str], cloud_override: str | None = None) -> GraphTarget:
    """EXO_CLOUD (or --cloud), GRAPH_ENDPOINT, EXO_ENDPOINT, IPPS_ENDPOINT and the canary's AUDIT_CANARY_* settings,
    checked: only the tools read these together, so they are parsed on demand."""
    from shared.config.clouds import CLOUDS
    from shared.config.settings import check_base_url, parse_canary

    reader = Env(env)
    cloud_name = (cloud_override or (reader.get("EXO_CLOUD") or "") or "global").lower()
    cloud = CLOUDS.get(cloud_name)
    graph_url = ((reader.get("GRAPH_ENDPOINT") or "") or (cloud.graph_url if cloud else "")).rstrip("/")
    if cloud is None:
        return GraphTarget(cloud_name, graph_url, f"EXO_CLOUD: must be one of {', '.join(CLOUDS)} (or pass --cloud)")
    if (problem := check_base_url(graph_url, allow_loopback_http=True)) is not None:
        return GraphTarget(cloud_name, graph_url, f"GRAPH_ENDPOINT: {problem}")
    exchange_url = ((reader.get("EXO_ENDPOINT") or "") or cloud.exchange_url).rstrip("/")
    if (problem := check_base_url(exchange_url, allow_loopback_http=True)) is not None:
        return GraphTarget(cloud_name, graph_url, f"EXO_ENDPOINT: {problem}", exchange_url)
    compliance_url = ((reader.get("IPPS_ENDPOINT") or "") or (cloud.compliance_url or "")).rstrip("/") or None
    if compliance_url and (problem := check_base_url(compliance_url, allow_loopback_http=True)) is not None:
        hint = problem.replace("outlook.office365.com", "ps.compliance.protection.outlook.com")
        return GraphTarget(cloud_name, graph_url, f"IPPS_ENDPOINT: {hint}", exchange_url)
    problems: dict[str, str] = {}
    canary = parse_canary(reader, problems)
    if problems:  # the role group depends on the canary: a setting that cannot be read changes nothing
        name, text = next(iter(problems.items()))
        return GraphTarget(cloud_name, graph_url, f"{name}: {text}", exchange_url)
    return GraphTarget(
        cloud_name,
        graph_url,
        exchange_url=exchange_url,
        compliance_url=compliance_url,
        canary_needs_mail_recipients=canary.needs_mail_recipients,
    )
