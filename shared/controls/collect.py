"""Reads the tenant snapshot from Exchange, asking only for the fields a check needs.

Large lists stream page by page into pure accumulators (mailbox_checks, bypass_checks), so memory follows the
findings, not the tenant. Anything that makes a read incomplete is recorded so the check fails closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.bypass_checks import BYPASS_FIELDS, BypassScan
from shared.controls.mailbox_checks import MAILBOX_FIELDS, SCANNED_TYPES, MailboxScan
from shared.exchange.client import ExchangeClient, Page
from shared.exchange.errors import ExchangeError, ExchangeProtocolError

log = logging.getLogger("mailbox_audit_guard.collect")

ORG_CONFIG_FIELDS = ("Name", "AuditDisabled", "IsDehydrated")
ADMIN_AUDIT_LOG_FIELDS = ("UnifiedAuditLogIngestionEnabled", "AdminAuditLogEnabled", "AdminAuditLogAgeLimit")
MISSING = object()  # a property the answer did not carry, as opposed to a null value
TRUNCATION_MARKER = "more results available"
MAX_WARNINGS = 100
SYSTEM_BYPASS_PREFIX = "asc-2x1"  # CIS v7: warnings about these system objects are logged, not findings
NOT_EXPLICIT_FILTER = ("AuditEnabled -ne $true -and RecipientTypeDetails -eq 'UserMailbox' "
                       "-and PersistedCapabilities -ne 'M365Auditing'")


@dataclass
class RunContext:
    """What reads need: the client, the policy, and a per-run cache so two controls share one mailbox scan."""

    client: ExchangeClient
    policy: AuditPolicy
    cache: dict[str, Any] = field(default_factory=dict)

    def cached(self, key: str, read: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = read()
        return self.cache[key]


@dataclass(frozen=True)
class OrgConfig:
    """`Get-OrganizationConfig`, as returned: values are raw, so a check can tell missing from wrong."""

    name: str | None
    audit_disabled: Any
    is_dehydrated: Any

    @property
    def audit_disabled_present(self) -> bool:
        return self.audit_disabled is not MISSING


@dataclass(frozen=True)
class AdminAuditLogConfig:
    """`Get-AdminAuditLogConfig` on the Exchange host, plus the dehydration flag remediation needs."""

    ual_enabled: Any
    admin_enabled: Any
    admin_age_limit: str | None
    is_dehydrated: Any
    name: str | None = None


def single_row(rows: list[dict[str, Any]], cmdlet: str) -> dict[str, Any]:
    """A singleton cmdlet must answer exactly one row; anything else is unreadable, not a value."""
    if len(rows) != 1:
        raise ExchangeProtocolError(f"expected exactly one object, got {len(rows)}", cmdlet=cmdlet)
    return rows[0]


def read_org_config(context: RunContext) -> OrgConfig:
    def read() -> OrgConfig:
        result = context.client.invoke("Get-OrganizationConfig", select=ORG_CONFIG_FIELDS)
        row = single_row(result.rows, "Get-OrganizationConfig")
        name = row.get("Name")
        return OrgConfig(name=name if isinstance(name, str) else None,
                         audit_disabled=row.get("AuditDisabled", MISSING),
                         is_dehydrated=row.get("IsDehydrated", MISSING))

    return context.cached("org", read)


def read_admin_audit_log_config(context: RunContext) -> AdminAuditLogConfig:
    row = single_row(context.client.invoke("Get-AdminAuditLogConfig", select=ADMIN_AUDIT_LOG_FIELDS).rows,
                     "Get-AdminAuditLogConfig")
    try:  # only the fix needs IsDehydrated: an unreadable org config must not make the UAL flag unknown
        org: OrgConfig | None = read_org_config(context)
    except ExchangeError:
        org = None
    age = row.get("AdminAuditLogAgeLimit")
    return AdminAuditLogConfig(ual_enabled=row.get("UnifiedAuditLogIngestionEnabled", MISSING),
                               admin_enabled=row.get("AdminAuditLogEnabled"),
                               admin_age_limit=age if isinstance(age, str) else None,
                               is_dehydrated=org.is_dehydrated if org else None, name=org.name if org else None)


def stream_into(pages: Iterator[Page], accumulator: Any) -> list[str]:
    """Feed every row to `accumulator.add`, resetting it when the query restarts; return the warnings (bounded).

    A final page that warns the result was cut short (ResultSize) without a nextLink means the data is incomplete.
    """
    warnings: list[str] = []
    last_warnings: list[str] = []
    for page in pages:
        if page.restarted:
            accumulator.reset()
            warnings = []
        for row in page.rows:
            accumulator.add(row)
        last_warnings = page.warnings
        warnings.extend(page.warnings[: max(0, MAX_WARNINGS - len(warnings))])
    if any(TRUNCATION_MARKER in warning.lower() for warning in last_warnings):
        accumulator.incomplete = "Exchange truncated the answer and offered no next page"
    return warnings


def read_mailbox_scan(context: RunContext) -> MailboxScan:
    """One pass over user and shared mailboxes, shared by mailbox-audit-actions and mailbox-audit-retention."""
    def scan() -> MailboxScan:
        result = MailboxScan(context.policy)
        pages = context.client.pages("Get-Mailbox", {"ResultSize": "Unlimited",
                                                     "RecipientTypeDetails": list(SCANNED_TYPES)},
                                     select=MAILBOX_FIELDS)
        result.warnings = stream_into(pages, result)
        if context.policy.check_explicit_enable:
            result.not_explicitly_enabled = count_rows(context.client.pages(
                "Get-Mailbox", {"ResultSize": "Unlimited", "Filter": NOT_EXPLICIT_FILTER},
                select=("ExternalDirectoryObjectId",)))
        return result

    return context.cached("mailboxes", scan)


def read_bypass_scan(context: RunContext) -> BypassScan:
    result = BypassScan(context.policy)
    warnings = stream_into(context.client.pages("Get-MailboxAuditBypassAssociation", {"ResultSize": "Unlimited"},
                                                select=BYPASS_FIELDS), result)
    result.system_warnings = [w for w in warnings if SYSTEM_BYPASS_PREFIX in w.lower()]
    result.warnings = [w for w in warnings if w not in result.system_warnings]
    if result.system_warnings:
        log.info("Get-MailboxAuditBypassAssociation: %d warnings about Asc-2X1 system objects (not findings)",
                 len(result.system_warnings))
    return result


def count_rows(pages: Iterator[Page]) -> int:
    """Count a streamed answer's rows (a restarted query counts from zero again)."""
    total = 0
    for page in pages:
        total = len(page.rows) if page.restarted else total + len(page.rows)
    return total
