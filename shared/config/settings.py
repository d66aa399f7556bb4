"""Settings from environment variables, validated once, before anything is sent.

Every problem is reported by the variable's name; secret values are never echoed back.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from shared.config.clouds import CLOUDS, Cloud
from shared.config.declaration import Env
from shared.config.exception_register import ExceptionFileError, ExceptionRegister, load_register

AUTH_MODES = ("managed_identity", "certificate", "secret", "federated_identity")
PERMISSION_MODELS = ("role-group", "entra-role")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9-]{1,63}\.)+[a-zA-Z]{2,63}$")


class ConfigError(Exception):
    """One or more settings are missing or wrong; `problems` maps each variable to what is wrong with it."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        lines = [f"{name}: {problem}" for name, problem in self.problems.items()]
        super().__init__("Configuration error:\n  " + "\n  ".join(lines))


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback addresses: the only hosts allowed plain http."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled in: what must match before a token is sent to a URL."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return (parts.scheme.lower(), "", -1)
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port or default)


def check_base_url(value: str, *, allow_loopback_http: bool) -> str | None:
    """Return what is wrong with a base URL (scheme and host, no query), or None when it is fine."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL, e.g. https://outlook.office365.com"
    if not parts.hostname.isascii():
        # A look-alike (e.g. a Cyrillic "о") would send the token elsewhere: internationalised names as punycode.
        return "must name its host in ASCII (write an internationalised name as punycode, xn--...)"
    if parts.scheme == "http" and not (allow_loopback_http and is_loopback_host(parts.hostname)):
        return "must use https (plain http is allowed only for loopback addresses such as 127.0.0.1)"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "must not carry credentials, a query or a fragment"
    if parts.path not in ("", "/"):
        return "must be a base URL without a path, e.g. https://outlook.office365.com"
    return None


@dataclass(frozen=True)
class Settings:
    """Validated connection settings for one tenant."""

    tenant_id: str
    auth_mode: str
    cloud: Cloud
    exchange_url: str
    authority: str
    organization: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    certificate_path: Path | None = None
    certificate_password: str | None = field(default=None, repr=False)
    operation_deadline_seconds: float = 60.0
    retry_backoff_seconds: float = 2.0
    run_deadline_seconds: float = 1500.0
    # The Security & Compliance admin API (audit-retention-policy): IPPS_ENDPOINT or the cloud's; None: none known.
    compliance_url: str | None = None
    permission_model: str = "entra-role"  # EXO_PERMISSION_MODEL: role-group or entra-role, for the evidence
    # federated_identity: the user-assigned managed identity whose token is the client assertion (None: system).
    managed_identity_client_id: str | None = None

    @property
    def token_scope(self) -> str:
        return self.cloud.token_scope

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the EXO_* variables; raise ConfigError naming every bad one."""
        problems: dict[str, str] = {}
        settings = parse_exchange(Env(os.environ if env is None else env), problems)
        if settings is None:
            raise ConfigError(problems)
        return settings


def parse_exchange(env: Env, problems: dict[str, str]) -> Settings | None:
    """The connection settings, or None with every problem recorded in `problems` under its variable's name."""
    bad: dict[str, str] = {}
    get = env.get
    tenant_id = get("EXO_TENANT_ID")
    if tenant_id is None:
        bad["EXO_TENANT_ID"] = "required: the tenant's GUID (Entra ID > Overview > Tenant ID)"
    elif not _GUID.match(tenant_id):
        bad["EXO_TENANT_ID"] = "must be the tenant GUID, e.g. 0b5c1c1e-1111-2222-3333-444455556666"

    organization = get("EXO_ORGANIZATION")
    if organization is not None and not _DOMAIN.match(organization):
        bad["EXO_ORGANIZATION"] = "must be a domain name such as contoso.onmicrosoft.com"

    auth_mode = (get("EXO_AUTH_MODE") or "managed_identity").lower()
    if auth_mode not in AUTH_MODES:
        bad["EXO_AUTH_MODE"] = f"must be one of {', '.join(AUTH_MODES)}"

    permission_model = (get("EXO_PERMISSION_MODEL") or "entra-role").lower()
    if permission_model not in PERMISSION_MODELS:
        bad["EXO_PERMISSION_MODEL"] = f"must be one of {', '.join(PERMISSION_MODELS)}"

    client_id = get("EXO_CLIENT_ID")
    if client_id is not None and not _GUID.match(client_id):
        bad["EXO_CLIENT_ID"] = "must be an application (client) id GUID"
    elif client_id is None and auth_mode in ("certificate", "secret", "federated_identity"):
        bad["EXO_CLIENT_ID"] = f"required with EXO_AUTH_MODE={auth_mode}: the app registration's client id"

    assertion_identity = get("EXO_MANAGED_IDENTITY_CLIENT_ID")
    if assertion_identity is not None and not _GUID.match(assertion_identity):
        bad["EXO_MANAGED_IDENTITY_CLIENT_ID"] = "must be the user-assigned managed identity's client id GUID"

    client_secret = get("EXO_CLIENT_SECRET")
    if auth_mode == "secret" and client_secret is None:
        bad["EXO_CLIENT_SECRET"] = "required with EXO_AUTH_MODE=secret"  # noqa: S105

    certificate_path = None
    raw_cert = get("EXO_CERTIFICATE_PATH")
    if auth_mode == "certificate":
        if raw_cert is None:
            bad["EXO_CERTIFICATE_PATH"] = "required with EXO_AUTH_MODE=certificate: a PEM with key and certificate"
        else:
            certificate_path = Path(raw_cert)
            try:
                readable = certificate_path.is_file()
            except OSError:  # e.g. PEM text pasted instead of a path: "File name too long" was a traceback
                readable = False
            if not readable:
                bad["EXO_CERTIFICATE_PATH"] = "file not found or not readable"

    cloud_name = (get("EXO_CLOUD") or "global").lower()
    cloud = CLOUDS.get(cloud_name)
    if cloud is None:
        bad["EXO_CLOUD"] = f"must be one of {', '.join(CLOUDS)}"
        cloud = CLOUDS["global"]

    exchange_url = get("EXO_ENDPOINT") or cloud.exchange_url
    if (problem := check_base_url(exchange_url, allow_loopback_http=True)) is not None:
        bad["EXO_ENDPOINT"] = problem

    compliance_url = get("IPPS_ENDPOINT") or cloud.compliance_url
    if compliance_url is not None and (problem := check_base_url(compliance_url, allow_loopback_http=True)):
        bad["IPPS_ENDPOINT"] = problem.replace("outlook.office365.com", "ps.compliance.protection.outlook.com")

    authority = get("EXO_AUTHORITY") or cloud.authority
    if (problem := check_base_url(authority, allow_loopback_http=False)) is not None:
        bad["EXO_AUTHORITY"] = problem

    deadline = number(
        get("EXO_OPERATION_DEADLINE_SECONDS"), 60.0, 1, 900, "EXO_OPERATION_DEADLINE_SECONDS", bad, unit="seconds"
    )

    backoff = number(get("EXO_RETRY_BACKOFF_SECONDS"), 2.0, 0.01, 60, "EXO_RETRY_BACKOFF_SECONDS", bad, unit="seconds")
    # 25 minutes: below the Flex Consumption default function timeout of 30 minutes (host.json).
    run_deadline = number(
        get("AUDIT_RUN_DEADLINE_SECONDS"), 1500.0, 5, 86400, "AUDIT_RUN_DEADLINE_SECONDS", bad, unit="seconds"
    )

    if bad:
        problems.update(bad)
        return None
    assert tenant_id is not None
    return Settings(
        tenant_id=tenant_id.lower(),
        auth_mode=auth_mode,
        cloud=cloud,
        exchange_url=exchange_url.rstrip("/"),
        authority=authority.rstrip("/"),
        organization=organization,
        client_id=client_id.lower() if client_id else None,
        client_secret=client_secret,
        certificate_path=certificate_path,
        certificate_password=get("EXO_CERTIFICATE_PASSWORD"),
        operation_deadline_seconds=deadline,
        retry_backoff_seconds=backoff,
        run_deadline_seconds=run_deadline,
        compliance_url=compliance_url.rstrip("/") if compliance_url else None,
        permission_model=permission_model,
        managed_identity_client_id=assertion_identity.lower() if assertion_identity else None,
    )


TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no", "")


def flag(env: Mapping[str, str] | Env, name: str, problems: dict[str, str]) -> bool:
    """A true/false setting (unset is false); a typo such as `ture` is a problem, never a silent false."""
    raw = (env.raw(name) if isinstance(env, Env) else env.get(name, "")).strip().lower()
    if raw not in TRUE_WORDS + FALSE_WORDS:
        problems[name] = "must be true or false"
    return raw in TRUE_WORDS


def number(
    raw: str | None, default: float, low: float, high: float, name: str, problems: dict[str, str], *, unit: str = ""
) -> float:
    """A number within [low, high] (of `unit`, said in the message); a bad one is recorded under its variable's name."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        problems[name] = f"must be a number{f' of {unit}' if unit else ''} between {low:g} and {high:g}"
        return default
    return value


BASELINES = ("cis", "cis-v4", "microsoft-default")
CANARY_WRITES = ("custom-attribute", "audit-property")
CANARY_ATTRIBUTES = tuple(f"CustomAttribute{n}" for n in range(1, 16))


@dataclass(frozen=True)
class CanarySettings:
    """The audit-pipeline control's canary: where it is written, how, and how late its record may arrive."""

    mailbox: str | None = None  # None: the control is not run
    write: str = "custom-attribute"  # or "audit-property" (stays inside the Audit Logs role)
    attribute: str = "CustomAttribute15"
    max_delay_hours: float = 24.0

    @property
    def needs_mail_recipients(self) -> bool:
        """Whether the canary write needs the broad Exchange role Mail Recipients (`Set-Mailbox -CustomAttributeN`,
        permissions.md §2); an `audit-property` write stays inside Audit Logs, and no canary writes nothing."""
        return self.mailbox is not None and self.write == "custom-attribute"


def parse_canary(env: Env, problems: dict[str, str]) -> CanarySettings:
    """The AUDIT_CANARY_* settings; problems are recorded under their variable's name (defaults stand in)."""
    bad: dict[str, str] = {}
    write = (env.get("AUDIT_CANARY_WRITE") or "custom-attribute").lower()
    if write not in CANARY_WRITES:
        bad["AUDIT_CANARY_WRITE"] = f"must be one of {', '.join(CANARY_WRITES)}"
        write = "custom-attribute"
    canonical = {name.lower(): name for name in CANARY_ATTRIBUTES}
    attribute = canonical.get((env.get("AUDIT_CANARY_ATTRIBUTE") or "CustomAttribute15").lower())
    if attribute is None:
        bad["AUDIT_CANARY_ATTRIBUTE"] = "must be one of CustomAttribute1 to CustomAttribute15"
        attribute = "CustomAttribute15"
    hours = number(
        env.get("AUDIT_CANARY_MAX_DELAY_HOURS"), 24.0, 0.0001, 168, "AUDIT_CANARY_MAX_DELAY_HOURS", bad, unit="hours"
    )
    mailbox = env.get("AUDIT_CANARY_MAILBOX")
    if mailbox is not None and (len(mailbox) > 256 or any(ch in mailbox for ch in '"\r\n')):
        bad["AUDIT_CANARY_MAILBOX"] = "must be a mailbox identity (UPN, SMTP address or name) without quotes"
        mailbox = None
    problems.update(bad)
    return CanarySettings(mailbox=mailbox, write=write, attribute=attribute, max_delay_hours=hours)


@dataclass(frozen=True)
class AuditPolicy:
    """What the mailbox-level controls expect: baseline, retention minimum, scope, exceptions, write pace."""

    baseline: str = "cis"
    min_retention_days: int = 90
    include_shared: bool = False
    check_explicit_enable: bool = False
    exceptions: ExceptionRegister = field(default_factory=ExceptionRegister)
    writes_per_second: float = 2.0
    verify_seconds: float = 120.0  # how long a remediation polls a read-back that does not show the write yet
    retention_policy_check: bool = False  # audit-retention-policy is opt-in: its read needs a write-capable role
    min_search_retention_days: int = 365  # CISA MS.SECURITYSUITE.5.2v1: audit records retrievable for 12 months
    canary: CanarySettings = field(default_factory=CanarySettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, today: date | None = None) -> AuditPolicy:
        """Read the MAILBOX_AUDIT_* settings and the exception register; ConfigError names every bad one."""
        problems: dict[str, str] = {}
        policy = parse_policy(Env(os.environ if env is None else env), problems, today)
        if problems:
            raise ConfigError(problems)
        return policy


def parse_policy(env: Env, problems: dict[str, str], today: date | None = None) -> AuditPolicy:
    """The mailbox controls' policy; problems are recorded under their variable's name (defaults stand in)."""
    today = today or datetime.now(UTC).date()
    bad: dict[str, str] = {}
    baseline = (env.get("MAILBOX_AUDIT_BASELINE") or "cis").lower()
    if baseline not in BASELINES:
        bad["MAILBOX_AUDIT_BASELINE"] = f"must be one of {', '.join(BASELINES)}"
    days = number(
        env.get("MAILBOX_AUDIT_MIN_RETENTION_DAYS"), 90, 1, 3650, "MAILBOX_AUDIT_MIN_RETENTION_DAYS", bad, unit="days"
    )
    if days != int(days):
        bad["MAILBOX_AUDIT_MIN_RETENTION_DAYS"] = "must be a whole number of days between 1 and 3650"
    pace = number(
        env.get("MAILBOX_REMEDIATION_WRITES_PER_SECOND"),
        2.0,
        0.1,
        50,
        "MAILBOX_REMEDIATION_WRITES_PER_SECOND",
        bad,
        unit="writes per second",
    )
    verify = number(
        env.get("REMEDIATION_VERIFY_SECONDS"), 120.0, 0, 900, "REMEDIATION_VERIFY_SECONDS", bad, unit="seconds"
    )
    search_days = number(
        env.get("AUDIT_MIN_SEARCH_RETENTION_DAYS"), 365, 1, 3650, "AUDIT_MIN_SEARCH_RETENTION_DAYS", bad, unit="days"
    )
    if search_days != int(search_days):
        bad["AUDIT_MIN_SEARCH_RETENTION_DAYS"] = "must be a whole number of days between 1 and 3650"
    flags = {
        name: flag(env, name, bad)
        for name in (
            "MAILBOX_AUDIT_INCLUDE_SHARED",
            "MAILBOX_AUDIT_CHECK_EXPLICIT_ENABLE",
            "AUDIT_RETENTION_POLICY_CHECK",
        )
    }
    register = ExceptionRegister()
    if (path := env.get("AUDIT_EXCEPTIONS_FILE")) is not None:
        try:
            register = load_register(path, today)
        except ExceptionFileError as exc:
            bad["AUDIT_EXCEPTIONS_FILE"] = f"{exc}; fix the file or unset the variable"
    problems.update(bad)
    return AuditPolicy(
        baseline=baseline if baseline in BASELINES else "cis",
        min_retention_days=int(days),
        include_shared=flags["MAILBOX_AUDIT_INCLUDE_SHARED"],
        check_explicit_enable=flags["MAILBOX_AUDIT_CHECK_EXPLICIT_ENABLE"],
        exceptions=register,
        writes_per_second=pace,
        verify_seconds=verify,
        retention_policy_check=flags["AUDIT_RETENTION_POLICY_CHECK"],
        min_search_retention_days=int(search_days),
        canary=parse_canary(env, problems),
    )


AUDIT_MODES = ("report", "remediate")


@dataclass(frozen=True)
class AppSettings:
    """Settings of the function app itself (the Exchange connection lives in `Settings`)."""

    audit_mode: str = "report"
    allow_key_only: bool = False
    include_identities: bool = False
    auth_enabled: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        problems: dict[str, str] = {}
        settings = parse_app(Env(os.environ if env is None else env), problems)
        if problems:
            raise ConfigError(problems)
        return settings


def parse_app(env: Env, problems: dict[str, str]) -> AppSettings:
    """The function app's own settings; problems are recorded under their variable's name (defaults stand in)."""
    # Not env.get: a blank AUDIT_MODE has always been refused, unlike a blank EXO_* setting.
    mode = (env.raw("AUDIT_MODE") or "report").strip().lower()
    if mode not in AUDIT_MODES:
        problems["AUDIT_MODE"] = f"must be one of {', '.join(AUDIT_MODES)}"
    return AppSettings(
        audit_mode=mode if mode in AUDIT_MODES else "report",
        allow_key_only=flag(env, "REMEDIATION_ALLOW_KEY_ONLY", problems),
        include_identities=flag(env, "TELEMETRY_INCLUDE_IDENTITIES", problems),
        # Set by App Service when its authentication is on; only then are X-MS-CLIENT-* headers
        # injected by the platform (and client-sent copies stripped).
        auth_enabled=flag(env, "WEBSITE_AUTH_ENABLED", problems),
    )
