"""The control catalogue, as data: stable ids, titles, expected values, framework mappings.

The ids appear in telemetry, alert queries and evidence reports: never rename one, add a new id instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Control:
    """One auditable setting and where it sits in the frameworks auditors ask about."""

    id: str
    title: str
    question: str
    expected: str
    remediation: str
    frameworks: dict[str, str]

    @property
    def frameworks_compact(self) -> str:
        """The `frameworks` telemetry dimension, e.g. `CIS-v7:6.1.1;CIS-v4:6.1.1;...`."""
        return ";".join(f"{name}:{ref}" for name, ref in self.frameworks.items())


def _frameworks(cis_v7: str, cis_v4: str, cisa: str | None) -> dict[str, str]:
    mapping = {"CIS-v7": cis_v7, "CIS-v4": cis_v4}
    if cisa:
        mapping["CISA"] = cisa
    # Every audit control serves the same logging clauses (controls.md §2).
    mapping |= {"ISO27001-2022": "A.8.15", "ISO27001-2013": "A.12.4.1", "BIO": "12.4.1", "NIS2": "21", "AVG": "32"}
    return mapping


ORG_AUDIT_ENABLED = Control(
    id="org-audit-enabled",
    title="Mailbox auditing on by default for the organisation",
    question="Is audit-by-default on for the organisation (Get-OrganizationConfig AuditDisabled)?",
    expected="AuditDisabled = False",
    remediation="Set-OrganizationConfig -AuditDisabled $false",
    frameworks=_frameworks("6.1.1", "6.1.1", "MS.EXO.13.1v1"),
)

CATALOGUE: dict[str, Control] = {control.id: control for control in (ORG_AUDIT_ENABLED,)}
