"""Reads the tenant snapshot from Exchange, asking only for the fields a check needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.exchange import ExchangeClient
from shared.exchange_errors import ExchangeProtocolError

ORG_CONFIG_FIELDS = ("Name", "AuditDisabled", "IsDehydrated")
_MISSING = object()


@dataclass(frozen=True)
class OrgConfig:
    """`Get-OrganizationConfig`, as returned: values are raw, so a check can tell missing from wrong."""

    name: str | None
    audit_disabled: Any
    is_dehydrated: Any
    warnings: tuple[str, ...] = ()

    @property
    def audit_disabled_present(self) -> bool:
        return self.audit_disabled is not _MISSING


def single_row(rows: list[dict[str, Any]], cmdlet: str) -> dict[str, Any]:
    """A singleton cmdlet must answer exactly one row; anything else is unreadable, not a value."""
    if len(rows) != 1:
        raise ExchangeProtocolError(f"expected exactly one object, got {len(rows)}", cmdlet=cmdlet)
    return rows[0]


def read_org_config(client: ExchangeClient) -> OrgConfig:
    result = client.invoke("Get-OrganizationConfig", select=ORG_CONFIG_FIELDS)
    row = single_row(result.rows, "Get-OrganizationConfig")
    name = row.get("Name")
    return OrgConfig(
        name=name if isinstance(name, str) else None,
        audit_disabled=row.get("AuditDisabled", _MISSING),
        is_dehydrated=row.get("IsDehydrated", _MISSING),
        warnings=tuple(result.warnings),
    )
