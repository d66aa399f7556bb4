"""`Get-OrganizationConfig`, read once per run and shared by org-audit-enabled and audit-log-search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.controls.reading import MISSING, RunContext, single_row

ORG_CONFIG_FIELDS = ("Name", "AuditDisabled", "IsDehydrated")


@dataclass(frozen=True)
class OrgConfig:
    """`Get-OrganizationConfig`, as returned: values are raw, so a check can tell missing from wrong."""

    name: str | None
    audit_disabled: Any
    is_dehydrated: Any

    @property
    def audit_disabled_present(self) -> bool:
        return self.audit_disabled is not MISSING


def read_org_config(context: RunContext) -> OrgConfig:
    def read() -> OrgConfig:
        result = context.client.invoke("Get-OrganizationConfig", select=ORG_CONFIG_FIELDS)
        row = single_row(result.rows, "Get-OrganizationConfig")
        name = row.get("Name")
        return OrgConfig(
            name=name if isinstance(name, str) else None,
            audit_disabled=row.get("AuditDisabled", MISSING),
            is_dehydrated=row.get("IsDehydrated", MISSING),
        )

    result: OrgConfig = context.cached("org", read)
    return result
