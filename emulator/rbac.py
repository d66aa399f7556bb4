"""Exchange RBAC for applications: service principal pointers, role groups, and the role each call needs.

An app-only caller may run a cmdlet when its Entra directory role allows it (exchange.cmdlet_allowed) or when the
Exchange service principal pointer of its app id is a member of role groups whose roles cover the cmdlet and every
parameter sent (permissions.md §2). A delegated caller (a signed-in administrator, grant-permissions) is judged by
its directory roles. Security & Compliance has RBAC of its own (its own pointers and role groups, Purview roles):
`compliance_rbac` is a second store of the same class. Pure apart from mutating its own lists; callers hold
`Emulator.lock`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from . import errors, params
from .tenant import CmdletResult  # tenant imports this module inside TenantState.__init__ only

VIEW_ONLY_CONFIGURATION = "View-Only Configuration"
VIEW_ONLY_RECIPIENTS = "View-Only Recipients"
AUDIT_LOGS = "Audit Logs"
ORGANIZATION_CONFIGURATION = "Organization Configuration"
MAIL_RECIPIENTS = "Mail Recipients"
ROLE_MANAGEMENT = "Role Management"
KNOWN_ROLES = (
    VIEW_ONLY_CONFIGURATION,
    VIEW_ONLY_RECIPIENTS,
    AUDIT_LOGS,
    ORGANIZATION_CONFIGURATION,
    MAIL_RECIPIENTS,
    ROLE_MANAGEMENT,
    "Journaling",
    "Transport Rules",
)
# The handbook's table (permissions.md §2), by cmdlet: the roles any one of which allows the call.
CMDLET_ROLES: dict[str, frozenset[str]] = {
    "Get-OrganizationConfig": frozenset({VIEW_ONLY_CONFIGURATION}),
    "Set-OrganizationConfig": frozenset({ORGANIZATION_CONFIGURATION}),
    "Enable-OrganizationCustomization": frozenset({ORGANIZATION_CONFIGURATION}),
    "Get-AdminAuditLogConfig": frozenset({VIEW_ONLY_CONFIGURATION}),
    "Set-AdminAuditLogConfig": frozenset({AUDIT_LOGS}),
    "Get-Mailbox": frozenset({VIEW_ONLY_RECIPIENTS, MAIL_RECIPIENTS}),
    "Get-MailboxAuditBypassAssociation": frozenset({VIEW_ONLY_CONFIGURATION}),
    "Set-MailboxAuditBypassAssociation": frozenset({AUDIT_LOGS}),
    "Get-AcceptedDomain": frozenset({VIEW_ONLY_CONFIGURATION}),
    "Get-ManagementRole": frozenset({VIEW_ONLY_CONFIGURATION, ROLE_MANAGEMENT}),
}
ROLE_MANAGEMENT_CMDLETS = (
    "New-ServicePrincipal",
    "Get-ServicePrincipal",
    "Remove-ServicePrincipal",
    "New-RoleGroup",
    "Get-RoleGroup",
    "Add-RoleGroupMember",
    "Remove-RoleGroupMember",
    "Get-RoleGroupMember",
    "New-ManagementRoleAssignment",
)
CMDLET_ROLES.update({name: frozenset({ROLE_MANAGEMENT}) for name in ROLE_MANAGEMENT_CMDLETS})
_AUDIT_PARAMETER = re.compile(r"^(Audit(Admin|Delegate|Owner|LogAgeLimit|Enabled)|DefaultAuditSet)$", re.IGNORECASE)
_NOT_JUDGED = frozenset({"identity"} | params.COMMON)
BUILT_IN_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Organization Management", KNOWN_ROLES),
    ("View-Only Organization Management", (VIEW_ONLY_CONFIGURATION, VIEW_ONLY_RECIPIENTS)),
    ("Compliance Management", (AUDIT_LOGS, VIEW_ONLY_CONFIGURATION, VIEW_ONLY_RECIPIENTS, "Journaling")),
    ("Recipient Management", (MAIL_RECIPIENTS,)),
)
# The Purview roles of the Security & Compliance side the emulator knows, and some of its built-in role groups.
# Organization Configuration is the one audit retention policies need (read and write, permissions.md §2).
PURVIEW_ROLES = (
    ORGANIZATION_CONFIGURATION,
    ROLE_MANAGEMENT,
    "View-Only Audit Logs",
    AUDIT_LOGS,
    "Retention Management",
    "View-Only Retention Management",
)
PURVIEW_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Organization Management", PURVIEW_ROLES),
    ("Compliance Administrator", (ORGANIZATION_CONFIGURATION, "View-Only Audit Logs", "Retention Management")),
    ("Global Reader", ("View-Only Audit Logs", "View-Only Retention Management")),
)


def requirements(cmdlet: str, parameters: Iterable[str]) -> list[frozenset[str]]:
    """What a call needs: one role set per requirement, each met by any role in it. Set-Mailbox is judged per
    parameter (audit properties: Audit Logs; anything else, CustomAttribute1..15 too: Mail Recipients)."""
    if cmdlet == "Set-Mailbox":
        needs = []
        for name in parameters:
            if name.lower() in _NOT_JUDGED:
                continue
            need = frozenset({AUDIT_LOGS}) if _AUDIT_PARAMETER.match(name) else frozenset({MAIL_RECIPIENTS})
            if need not in needs:
                needs.append(need)
        return needs or [frozenset({AUDIT_LOGS})]
    roles = CMDLET_ROLES.get(cmdlet)
    return [roles] if roles is not None else [frozenset()]  # a cmdlet not in the table: no role grants it


def _key(value: Any) -> str:
    return str(value or "").strip().lower()


class ExchangeRbac:
    """The tenant's Exchange service principal pointers and role groups, and the cmdlets that manage them."""

    def __init__(
        self,
        settings: dict[str, Any],
        require_hydrated: Callable[[], None],
        *,
        known_roles: tuple[str, ...] = KNOWN_ROLES,
        built_in_groups: tuple[tuple[str, tuple[str, ...]], ...] = BUILT_IN_GROUPS,
    ) -> None:
        self._require_hydrated = require_hydrated
        self.known_roles = known_roles
        self.app_roles: list[str] = list(settings.get("app_roles") or [])
        self.service_principals: list[dict[str, Any]] = [
            self._pointer(sp.get("AppId"), sp.get("ObjectId"), sp.get("DisplayName"))
            for sp in settings.get("service_principals") or []
        ]
        self.role_groups: list[dict[str, Any]] = [
            self._group(name, list(roles), [], built_in=True) for name, roles in built_in_groups
        ]
        for group in settings.get("role_groups") or []:
            self.role_groups.append(self._group(str(group["Name"]), list(group.get("Roles") or []), []))
            self.role_groups[-1]["Members"] = [str(m) for m in group.get("Members") or []]

    def seed(self, identities: Iterable[tuple[str, str, str]]) -> None:
        """The scenario's `app_roles` shortcut: pointers for the emulator's own identities (app id, object id,
        name), all members of one custom group holding those roles."""
        if not self.app_roles:
            return
        members = []
        for app_id, object_id, name in identities:
            if self._find_pointer(app_id) is None:
                self.service_principals.append(self._pointer(app_id, object_id, name))
            members.append(object_id)
        self.role_groups.append(self._group("Scenario app roles", self.app_roles, members))

    # ---- role checks ------------------------------------------------------------------------------------------

    def roles_of_app(self, app_id: str) -> set[str]:
        """The Exchange roles the app holds through role groups (none without a service principal pointer)."""
        pointer = self._find_pointer(app_id)
        if pointer is None:
            return set()
        ids = {_key(pointer["ObjectId"]), _key(pointer["AppId"]), _key(pointer["Identity"])}
        held: set[str] = set()
        for group in self.role_groups:
            if ids & {_key(m) for m in group["Members"]}:
                held.update(group["Roles"])
        return held

    def app_allowed(self, app_id: str, cmdlet: str, parameters: Iterable[str]) -> bool:
        held = self.roles_of_app(app_id)
        return bool(held) and all(need & held for need in requirements(cmdlet, parameters))

    # ---- cmdlets ----------------------------------------------------------------------------------------------

    def cmdlets(self) -> dict[str, Callable[[dict[str, Any], str | None], CmdletResult]]:
        return {
            "New-ServicePrincipal": self._new_service_principal,
            "Get-ServicePrincipal": self._get_service_principal,
            "New-RoleGroup": self._new_role_group,
            "Get-RoleGroup": self._get_role_group,
            "Add-RoleGroupMember": self._add_member,
            "Remove-RoleGroupMember": self._remove_member,
            "Get-RoleGroupMember": self._get_members,
            "New-ManagementRoleAssignment": self._new_assignment,
            "Get-ManagementRole": self._get_management_role,
        }

    @staticmethod
    def _pointer(app_id: Any, object_id: Any, name: Any) -> dict[str, Any]:
        object_id = _key(object_id)
        return {
            "DisplayName": str(name or object_id),
            "AppId": _key(app_id),
            "ObjectId": object_id,
            "Identity": object_id,
            "Name": object_id,
            "Guid": str(uuid.uuid4()),
        }

    @staticmethod
    def _group(name: str, roles: list[str], members: list[str], built_in: bool = False) -> dict[str, Any]:
        return {
            "Name": name,
            "DisplayName": name,
            "Identity": name,
            "Guid": str(uuid.uuid4()),
            "Roles": list(roles),
            "Members": list(members),
            "RoleGroupType": "Standard" if built_in else "Custom",
            "Description": "",
        }

    def _find_pointer(self, identity: Any) -> dict[str, Any] | None:
        key = _key(identity)
        return next(
            (sp for sp in self.service_principals if key in {sp["AppId"], sp["ObjectId"], _key(sp["DisplayName"])}),
            None,
        )

    def _find_group(self, identity: Any) -> dict[str, Any]:
        key = _key(identity)
        for group in self.role_groups:
            if key in {_key(group["Name"]), _key(group["Guid"])}:
                return group
        raise errors.not_found(str(identity))

    def _member_id(self, identity: Any) -> str:
        pointer = self._find_pointer(identity)
        if pointer is None:
            raise errors.not_found(str(identity))
        return str(pointer["ObjectId"])

    def _new_service_principal(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["AppId", "ObjectId", "ServiceId", "DisplayName", "Organization"])
        app_id, object_id = bound.get("AppId"), bound.get("ObjectId") or bound.get("ServiceId")
        if not app_id or not object_id:
            raise errors.binding("New-ServicePrincipal needs -AppId and -ObjectId (the Entra service principal id).")
        if self._find_pointer(app_id) is not None or self._find_pointer(object_id) is not None:
            raise errors.make(
                400,
                errors.VALIDATION,
                f"The service principal with AppId '{app_id}' already exists in this organization.",
            )
        pointer = self._pointer(app_id, object_id, bound.get("DisplayName"))
        self.service_principals.append(pointer)
        return CmdletResult([dict(pointer)])

    def _get_service_principal(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Identity", "Organization"])
        if "Identity" not in bound:
            return CmdletResult([dict(sp) for sp in self.service_principals])
        pointer = self._find_pointer(bound["Identity"])
        if pointer is None:
            raise errors.not_found(str(bound["Identity"]))
        return CmdletResult([dict(pointer)])

    def _roles(self, value: Any) -> list[str]:
        names = value if isinstance(value, list) else [value] if value else []
        roles = []
        for name in names:
            canonical = next((r for r in self.known_roles if r.lower() == str(name).strip().lower()), None)
            if canonical is None:
                raise errors.not_found(str(name))
            roles.append(canonical)
        return roles

    def _new_role_group(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Name", "DisplayName", "Roles", "Members", "Description", "ManagedBy"])
        name = str(bound.get("Name") or "").strip()
        if not name:
            raise errors.binding("New-RoleGroup needs -Name.")
        self._require_hydrated()  # a dehydrated tenant refuses custom role groups
        if any(_key(g["Name"]) == name.lower() for g in self.role_groups):
            raise errors.make(400, errors.VALIDATION, f"The role group '{name}' already exists.")
        members = bound.get("Members") or []
        member_ids = [self._member_id(m) for m in (members if isinstance(members, list) else [members])]
        group = self._group(name, self._roles(bound.get("Roles")), member_ids)
        group["Description"] = str(bound.get("Description") or "")
        self.role_groups.append(group)
        return CmdletResult([self._copy(group)])

    @staticmethod
    def _copy(group: dict[str, Any]) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in group.items()}

    def _get_role_group(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Identity", "ResultSize"])
        if "Identity" in bound:
            return CmdletResult([self._copy(self._find_group(bound["Identity"]))])
        return CmdletResult([self._copy(g) for g in self.role_groups])

    def _add_member(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Identity", "Member", "BypassSecurityGroupManagerCheck"])
        group = self._find_group(bound.get("Identity"))
        member = self._member_id(bound.get("Member"))
        if member in group["Members"]:
            raise errors.make(
                400,
                "Microsoft.Exchange.Management.Tasks.MemberAlreadyExistsException",
                f'The recipient "{member}" is already a member of the group "{group["Name"]}".',
            )
        group["Members"].append(member)
        return CmdletResult([])

    def _remove_member(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Identity", "Member", "BypassSecurityGroupManagerCheck"])
        group = self._find_group(bound.get("Identity"))
        member = self._member_id(bound.get("Member"))
        if member not in group["Members"]:
            raise errors.not_found(str(bound.get("Member")))
        group["Members"].remove(member)
        return CmdletResult([])

    def _get_members(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Identity", "ResultSize"])
        group = self._find_group(bound.get("Identity"))
        rows = []
        for member in group["Members"]:
            pointer = self._find_pointer(member)
            name = pointer["DisplayName"] if pointer else member
            rows.append(
                {
                    "Name": member,
                    "DisplayName": name,
                    "Identity": member,
                    "ExternalDirectoryObjectId": member,
                    "RecipientType": "ServicePrincipal" if pointer else "User",
                }
            )
        return CmdletResult(rows)

    def _new_assignment(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Role", "SecurityGroup", "Name", "App"])
        if "SecurityGroup" not in bound:
            raise errors.binding("The emulator supports New-ManagementRoleAssignment -Role <role> -SecurityGroup.")
        self._require_hydrated()
        group = self._find_group(bound["SecurityGroup"])
        (role,) = self._roles(bound.get("Role"))
        if role in group["Roles"]:
            raise errors.make(
                400, errors.VALIDATION, f"The role assignment of '{role}' to '{group['Name']}' already exists."
            )
        group["Roles"].append(role)
        return CmdletResult([{"Name": f"{role}-{group['Name']}", "Role": role, "RoleAssigneeName": group["Name"]}])

    def _get_management_role(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        """`-Cmdlet X [-CmdletParameters a,b]`: the roles that allow the call (the table above), else all roles."""
        bound = params.bind(parameters, ["Identity", "Cmdlet", "CmdletParameters"])
        if "Cmdlet" not in bound:
            return CmdletResult([{"Name": r, "Identity": r} for r in KNOWN_ROLES])
        cmdlet = next((c for c in CMDLET_ROLES if c.lower() == str(bound["Cmdlet"]).lower()), str(bound["Cmdlet"]))
        wanted = bound.get("CmdletParameters") or []
        names = [str(p) for p in (wanted if isinstance(wanted, list) else str(wanted).split(","))]
        needs = requirements(cmdlet, names)
        allowed = [r for r in KNOWN_ROLES if all(r in need for need in needs)]
        return CmdletResult([{"Name": r, "Identity": r, "RoleType": r.replace(" ", "")} for r in allowed])


def compliance_rbac(settings: dict[str, Any]) -> ExchangeRbac:
    """The Security & Compliance side's own store: Purview roles and groups, no customisation step, and the same
    pointer and role-group cmdlets except Get-ManagementRole (which does not work there, permissions.md §4)."""
    return ExchangeRbac(settings, lambda: None, known_roles=PURVIEW_ROLES, built_in_groups=PURVIEW_GROUPS)


def compliance_cmdlets(rbac: ExchangeRbac) -> dict[str, Callable[[dict[str, Any], str | None], CmdletResult]]:
    """The Security & Compliance side's RBAC cmdlets: Exchange's, without Get-ManagementRole."""
    return {name: run for name, run in rbac.cmdlets().items() if name != "Get-ManagementRole"}
