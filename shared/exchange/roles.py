"""Which Exchange RBAC role each cmdlet (and parameter) the app sends needs, from permissions.md §2. Pure.

Exchange answers a missing role with an unreadable 403 (a body of NUL bytes, exchange-admin-api.md §10.9), so
the role cannot be read from the answer: it is looked up here from what was sent, with the handbook's confidence
label ([C] documented or several sources, [S] one source, [I] inference). `Get-ManagementRole -Cmdlet <cmdlet>
-CmdletParameters <p>` in an admin session confirms a row in a real tenant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

VIEW_ONLY_CONFIGURATION = "View-Only Configuration"
VIEW_ONLY_RECIPIENTS = "View-Only Recipients"
AUDIT_LOGS = "Audit Logs"
ORGANIZATION_CONFIGURATION = "Organization Configuration"
MAIL_RECIPIENTS = "Mail Recipients"
ROLE_MANAGEMENT = "Role Management"


@dataclass(frozen=True)
class RoleNeed:
    """The role one cmdlet (with `parameter`, when the role depends on it) needs, and how sure the handbook is."""

    cmdlet: str
    role: str
    confidence: str
    parameter: str | None = None
    note: str = ""

    @property
    def call(self) -> str:
        return f"{self.cmdlet} -{self.parameter}" if self.parameter else self.cmdlet


# cmdlet (lower case) -> the role whatever the parameters, and its confidence (permissions.md §2).
CMDLET_ROLES: dict[str, tuple[str, str, str]] = {
    "get-organizationconfig": (VIEW_ONLY_CONFIGURATION, "[C]", ""),
    "set-organizationconfig": (ORGANIZATION_CONFIGURATION, "[S]", ""),
    "enable-organizationcustomization": (ORGANIZATION_CONFIGURATION, "[S]", ""),
    "get-adminauditlogconfig": (VIEW_ONLY_CONFIGURATION, "[C]", ""),
    "set-adminauditlogconfig": (AUDIT_LOGS, "[C]", "the Exchange role, not the Purview one"),
    "get-mailbox": (VIEW_ONLY_RECIPIENTS, "[C]", ""),
    "get-mailboxauditbypassassociation": (VIEW_ONLY_CONFIGURATION, "[C]", ""),
    "set-mailboxauditbypassassociation": (AUDIT_LOGS, "[S]", "one source says Journaling or Compliance Admin"),
    "get-accepteddomain": (VIEW_ONLY_CONFIGURATION, "[C]", ""),
    # The grant's own cmdlets (sent by a signed-in administrator): Role Management [C], reads of it [I].
    "new-serviceprincipal": (ROLE_MANAGEMENT, "[C]", ""),
    "get-serviceprincipal": (ROLE_MANAGEMENT, "[I]", ""),
    "new-rolegroup": (ROLE_MANAGEMENT, "[C]", ""),
    "get-rolegroup": (ROLE_MANAGEMENT, "[I]", ""),
    "add-rolegroupmember": (ROLE_MANAGEMENT, "[C]", ""),
    "get-rolegroupmember": (ROLE_MANAGEMENT, "[I]", ""),
    "new-managementroleassignment": (ROLE_MANAGEMENT, "[C]", ""),
}
_AUDIT_PARAMETER = re.compile(r"^Audit(Admin|Delegate|Owner|LogAgeLimit|Enabled)$|^DefaultAuditSet$", re.IGNORECASE)
_CUSTOM_ATTRIBUTE = re.compile(r"^CustomAttribute([1-9]|1[0-5])$", re.IGNORECASE)
_IGNORED = frozenset({"identity", "resultsize", "filter", "recipienttypedetails"})


def needed_roles(cmdlet: str, parameters: Iterable[str] = ()) -> list[RoleNeed]:
    """The roles a call of `cmdlet` with these parameter names needs; [] for a cmdlet the table does not know."""
    key = cmdlet.strip().lower()
    if key == "set-mailbox":
        return _set_mailbox(cmdlet.strip(), parameters)
    known = CMDLET_ROLES.get(key)
    if known is None:
        return []
    role, confidence, note = known
    return [RoleNeed(cmdlet.strip(), role, confidence, note=note)]


def _set_mailbox(cmdlet: str, parameters: Iterable[str]) -> list[RoleNeed]:
    needs: list[RoleNeed] = []
    for name in parameters:
        if name.lower() in _IGNORED:
            continue
        if _AUDIT_PARAMETER.match(name):
            need = RoleNeed(cmdlet, AUDIT_LOGS, "[C] role, [I] per parameter", name)
        elif _CUSTOM_ATTRIBUTE.match(name):
            need = RoleNeed(cmdlet, MAIL_RECIPIENTS, "[I]", name, "broad: forwarding, addresses, most properties")
        else:
            need = RoleNeed(cmdlet, MAIL_RECIPIENTS, "[I]", name)
        if all(n.role != need.role for n in needs):
            needs.append(need)
    return needs or [RoleNeed(cmdlet, AUDIT_LOGS, "[C] role, [I] per parameter")]


def missing_role_hint(cmdlet: str, parameters: Iterable[str] = ()) -> str | None:
    """The sentence a 403 adds: which Exchange role the app appears to lack for this call; None if not known."""
    needs = needed_roles(cmdlet, parameters)
    if not needs:
        return None
    roles = " and ".join(f'"{n.role}" (for {n.call}, {n.confidence})' for n in needs)
    names = ",".join(n.parameter for n in needs if n.parameter)
    confirm = f"Get-ManagementRole -Cmdlet {needs[0].cmdlet}" + (f" -CmdletParameters {names}" if names else "")
    use = "check" if cmdlet.strip().lower().startswith("get-") else "remediate"
    return (
        f"With Exchange role groups the app appears to lack the Exchange role {roles}: add it to the app's role "
        f"group (`python -m shared grant-permissions --exchange-roles {use}`); "
        f"`{confirm}` in an admin session lists the roles that allow the call."
    )
