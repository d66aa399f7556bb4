"""TenantState: the emulated tenant's data and the cmdlets that read and change it.

Pure apart from mutating its own dicts: no HTTP, no locking (callers hold `Emulator.lock`). Failures raise
EmulatedError; the wire layer turns them into Exchange's error envelope.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors, params
from .audit_actions import ALL_ACTIONS, ALLOWED, CANONICAL, LICENSED, LIST_PARAMETERS, LOGON_TYPES
from .opath import OpathError, compile_filter
from .scenario import (
    MAILBOX_FIELDS,
    generate_bypass_associations,
    generate_mailboxes,
    load_scenario,
)

UAL_ANCHOR_MAILBOX = "SystemMailbox{8cc370d3-822a-4ab8-a926-bb94bd0641a9}"
# Mailbox types that audit-by-default covers; Get-Mailbox reports AuditEnabled True for them while it is on.
AUDITED_BY_DEFAULT = frozenset({"UserMailbox", "SharedMailbox", "GroupMailbox"})
RECIPIENT_TYPE_NAMES = (
    "UserMailbox",
    "SharedMailbox",
    "RoomMailbox",
    "EquipmentMailbox",
    "DiscoveryMailbox",
    "GroupMailbox",
    "LinkedMailbox",
    "LinkedRoomMailbox",
    "SchedulingMailbox",
    "TeamMailbox",
    "LegacyMailbox",
)
# AuditLogAgeLimit is not filterable in Exchange (cmdlet-property-sets / filter-properties docs).
FILTERABLE = tuple(f for f in MAILBOX_FIELDS if f != "AuditLogAgeLimit")
MAILBOX_KEYS = ("ExternalDirectoryObjectId", "Guid", "UserPrincipalName", "PrimarySmtpAddress", "Name")
BYPASS_KEYS = ("Guid", "Name", "Identity")
CUSTOM_ATTRIBUTES = tuple(f"CustomAttribute{n}" for n in range(1, 16))


@dataclass
class CmdletResult:
    """What a cmdlet produced. Paged cmdlets return stored objects plus `render` (run per page, under the lock)."""

    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    paged: bool = False
    truncated: bool = False


def not_modified(name: str) -> str:
    return f"The command completed successfully but no settings of '{name}' have been modified."


TRUNCATED_WARNING = (
    "There are more results available than are currently displayed. To view them, increase the "
    "value for the ResultSize parameter."
)


class _IdentityIndex:
    """Identity -> positions, rebuilt whenever the list was replaced, resized or edited behind our back.

    Tests may mutate `tenant.mailboxes` directly, so every hit is re-verified against the live dict.
    """

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self._index: dict[str, list[int]] = {}
        self._source: list[dict[str, Any]] | None = None
        self._size = -1

    def lookup(self, items: list[dict[str, Any]], identity: str) -> list[dict[str, Any]]:
        key = identity.strip().lower()
        if items is not self._source or len(items) != self._size:
            self._rebuild(items)
        hits = self._verified(items, key)
        if hits is None:
            self._rebuild(items)
            hits = self._verified(items, key) or []
        return hits

    def _matches(self, item: dict[str, Any], key: str) -> bool:
        return any(str(item.get(k, "")).lower() == key for k in self.keys)

    def _verified(self, items: list[dict[str, Any]], key: str) -> list[dict[str, Any]] | None:
        positions = self._index.get(key)
        if not positions:
            return None
        hits = []
        for pos in positions:
            if pos >= len(items) or not self._matches(items[pos], key):
                return None
            hits.append(items[pos])
        return hits

    def _rebuild(self, items: list[dict[str, Any]]) -> None:
        index: dict[str, list[int]] = {}
        for pos, item in enumerate(items):
            for value in {str(item.get(k, "")).lower() for k in self.keys} - {""}:
                index.setdefault(value, []).append(pos)
        self._index, self._source, self._size = index, items, len(items)


class TenantState:
    """The live tenant: organization_config, admin_audit_log_config, mailboxes, bypass_associations (all mutable)."""

    def __init__(self, scenario: dict[str, Any] | None = None) -> None:
        sc = load_scenario(scenario)
        self.tenant_id: str = sc["tenant_id"]
        self.organization: str = sc["organization"]
        self.principal: dict[str, Any] = sc["principal"]
        self.licence_gate: bool = sc["licence_gate"]
        self.customisation_delay_seconds: float = sc["customisation_delay_seconds"]
        # Monotonic time until which org-wide writes are still refused after Enable-OrganizationCustomization
        # (tests set it to 0 to let the propagation "finish").
        self.customisation_pending_until: float = 0.0
        self.default_actions: dict[str, list[str]] = sc["default_actions"]
        self.organization_config: dict[str, Any] = sc["organization_config"]
        self.admin_audit_log_config: dict[str, Any] = sc["admin_audit_log_config"]
        self.mailboxes: list[dict[str, Any]] = sc["mailboxes"]
        self.mailboxes.extend(
            generate_mailboxes(sc["generate_mailboxes"], self.tenant_id, self.organization, self.default_actions)
        )
        self.accepted_domains: list[str] = sc["accepted_domains"]
        self.bypass_associations: list[dict[str, Any]] = sc["bypass_associations"]
        self.bypass_associations.extend(
            generate_bypass_associations(sc["generate_bypass_associations"], self.tenant_id)
        )
        self._mailbox_index = _IdentityIndex(MAILBOX_KEYS)
        self._bypass_index = _IdentityIndex(BYPASS_KEYS)
        self._cmdlets: dict[str, Callable[[dict[str, Any], str | None], CmdletResult]] = {
            "Get-OrganizationConfig": self._get_organization_config,
            "Set-OrganizationConfig": self._set_organization_config,
            "Enable-OrganizationCustomization": self._enable_organization_customization,
            "Get-AdminAuditLogConfig": self._get_admin_audit_log_config,
            "Set-AdminAuditLogConfig": self._set_admin_audit_log_config,
            "Get-Mailbox": self._get_mailbox,
            "Set-Mailbox": self._set_mailbox,
            "Get-MailboxAuditBypassAssociation": self._get_bypass,
            "Set-MailboxAuditBypassAssociation": self._set_bypass,
            "Get-AcceptedDomain": self._get_accepted_domains,
        }
        from .rbac import ExchangeRbac  # here: rbac imports CmdletResult from this module

        # Exchange RBAC for applications: service principal pointers and role groups (emulator/rbac.py).
        self.rbac = ExchangeRbac(sc["exchange_rbac"], self._require_hydrated)
        self._cmdlets.update(self.rbac.cmdlets())
        self._canonical = {name.lower(): name for name in self._cmdlets}

    # ---- entry points -------------------------------------------------------------------------------------

    def canonical_cmdlet(self, name: str) -> str | None:
        """The cmdlet's canonical spelling, or None when the emulator does not know it."""
        return self._canonical.get(str(name).lower())

    def invoke(self, cmdlet: str, parameters: dict[str, Any], anchor: str | None = None) -> CmdletResult:
        """Run one cmdlet. `anchor` is the X-AnchorMailbox header (Set-AdminAuditLogConfig routing)."""
        name = self.canonical_cmdlet(cmdlet)
        if name is None:
            raise errors.make(400, errors.ODATA, f"The term '{cmdlet}' is not recognized as a cmdlet.")
        return self._cmdlets[name](parameters, anchor)

    def mailbox(self, identity: str) -> dict[str, Any]:
        """The stored mailbox for an Identity (EDOid, Guid, UPN, SMTP address or Name); raises the 404."""
        hits = self._mailbox_index.lookup(self.mailboxes, str(identity))
        if not hits:
            raise errors.not_found(str(identity))
        if len(hits) > 1:
            raise errors.ambiguous(str(identity))
        return hits[0]

    def bypass_association(self, identity: str) -> dict[str, Any]:
        hits = self._bypass_index.lookup(self.bypass_associations, str(identity))
        if not hits:
            raise errors.not_found(str(identity))
        if len(hits) > 1:
            raise errors.ambiguous(str(identity))
        return hits[0]

    def render_mailbox(self, mailbox: dict[str, Any]) -> dict[str, Any]:
        """What Get-Mailbox returns: a shallow copy with AuditEnabled as the service reports it (not as stored)."""
        row = dict(mailbox)  # shallow: the wire layer copies the lists it returns
        if mailbox.get("RecipientTypeDetails") in AUDITED_BY_DEFAULT and not self.organization_config.get(
            "AuditDisabled"
        ):
            row["AuditEnabled"] = True
        return row

    @staticmethod
    def _copy(item: dict[str, Any]) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in item.items()}

    # ---- organization ---------------------------------------------------------------------------------------

    def _get_organization_config(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        params.bind(parameters, ["Identity"])
        return CmdletResult([self._copy(self.organization_config)])

    def _require_hydrated(self) -> None:
        # While customisation propagates, IsDehydrated already reads False but the write is refused the same way.
        if self.organization_config.get("IsDehydrated") or time.monotonic() < self.customisation_pending_until:
            raise errors.dehydrated()

    def _set_organization_config(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["AuditDisabled", "Identity"], open_ended=True)
        bound.pop("Identity", None)
        if "AuditDisabled" in bound:
            bound["AuditDisabled"] = params.to_bool("AuditDisabled", bound["AuditDisabled"])
        self._require_hydrated()
        return self._apply(self.organization_config, bound, str(self.organization_config.get("Name")))

    def _enable_organization_customization(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        params.bind(parameters, [])
        if not self.organization_config.get("IsDehydrated"):
            raise errors.make(
                400,
                errors.INVALID_OPERATION,
                "This operation is not required. Organization is already enabled for customization.",
            )
        self.organization_config["IsDehydrated"] = False
        self.customisation_pending_until = time.monotonic() + self.customisation_delay_seconds
        return CmdletResult([])

    def _get_admin_audit_log_config(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        params.bind(parameters, ["Identity"])
        return CmdletResult([self._copy(self.admin_audit_log_config)])

    def _is_ual_anchor(self, anchor: str | None) -> bool:
        wanted = {
            f"{scheme}:{UAL_ANCHOR_MAILBOX}@{t}".lower()
            for scheme in ("APP", "UPN")
            for t in (self.tenant_id, self.organization)
        }
        return bool(anchor) and anchor.strip().lower() in wanted

    def _set_admin_audit_log_config(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(
            parameters, ["UnifiedAuditLogIngestionEnabled", "AdminAuditLogEnabled", "AdminAuditLogAgeLimit", "Identity"]
        )
        bound.pop("Identity", None)
        for key in ("UnifiedAuditLogIngestionEnabled", "AdminAuditLogEnabled"):
            if key in bound:
                bound[key] = params.to_bool(key, bound[key])
        if "AdminAuditLogAgeLimit" in bound:
            bound["AdminAuditLogAgeLimit"] = params.to_timespan("AdminAuditLogAgeLimit", bound["AdminAuditLogAgeLimit"])
        # Only enabling needs the arbitration mailbox's server; disabling works anywhere (pnp/cli-microsoft365 #4677).
        if bound.get("UnifiedAuditLogIngestionEnabled") is True and not self._is_ual_anchor(anchor):
            raise errors.make(
                400,
                errors.PROXY,
                f"Cmdlet needs proxy. Current Server FQDN : {errors.SERVER_FQDN}, Required Server FQDN :"
                " DB8PR02MB5678.eurprd02.prod.exchangelabs.com",
            )
        self._require_hydrated()
        return self._apply(self.admin_audit_log_config, bound, str(self.admin_audit_log_config.get("Name")))

    @staticmethod
    def _apply(target: dict[str, Any], changes: dict[str, Any], name: str) -> CmdletResult:
        """Store `changes`; warn the way Exchange does when nothing differed."""
        changed = {k: v for k, v in changes.items() if k not in target or target[k] != v}
        target.update(changed)
        return CmdletResult([], [] if changed else [not_modified(name)])

    # ---- mailboxes ------------------------------------------------------------------------------------------

    def _get_mailbox(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Identity", "RecipientTypeDetails", "Filter", "ResultSize"])
        size = params.result_size(bound.get("ResultSize"))
        if bound.get("Identity") is not None:
            if bound.get("Filter") is not None:
                raise errors.binding("Parameter set cannot be resolved using the specified named parameters.")
            return CmdletResult([self.mailbox(str(bound["Identity"]))], render=self.render_mailbox, paged=True)
        tests: list[Callable[[dict[str, Any]], bool]] = []
        if bound.get("RecipientTypeDetails") is not None:
            types = self._recipient_types(bound["RecipientTypeDetails"])
            tests.append(lambda m: m.get("RecipientTypeDetails") in types)
        if bound.get("Filter") is not None:
            tests.append(self._compile_filter(bound["Filter"]))
        return self._collect(self.mailboxes, tests, size, self.render_mailbox)

    @staticmethod
    def _recipient_types(value: Any) -> set[str]:
        canonical = {t.lower(): t for t in RECIPIENT_TYPE_NAMES}
        types = set()
        for item in params.to_strings("RecipientTypeDetails", value):
            if item.lower() not in canonical:
                raise errors.enumeration(
                    "RecipientTypeDetails",
                    item,
                    "Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails",
                    RECIPIENT_TYPE_NAMES,
                )
            types.add(canonical[item.lower()])
        return types

    @staticmethod
    def _compile_filter(text: Any) -> Callable[[dict[str, Any]], bool]:
        if not isinstance(text, str):
            raise errors.conversion("Filter", text, "System.String")
        try:
            return compile_filter(text, FILTERABLE)
        except OpathError as exc:
            raise errors.binding(
                f"Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": "
                f'"Invalid filter syntax. {exc} For a description of the filter parameter syntax '
                'see the command help."'
            ) from None

    @staticmethod
    def _collect(
        items: list[dict[str, Any]],
        tests: list[Callable[[dict[str, Any]], bool]],
        size: int | None,
        render: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> CmdletResult:
        """Matching stored objects, stopping one past ResultSize (so the default 1000 never scans 100k)."""
        if not tests and size is None:
            rows = list(items)
        else:
            rows = []
            limit = None if size is None else size + 1
            for item in items:
                if all(test(item) for test in tests):
                    rows.append(item)
                    if limit is not None and len(rows) >= limit:
                        break
        truncated = size is not None and len(rows) > size
        if truncated:
            del rows[size:]
        return CmdletResult(
            rows, [TRUNCATED_WARNING] if truncated else [], render=render, paged=True, truncated=truncated
        )

    def _set_mailbox(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(
            parameters,
            ["Identity", "AuditEnabled", "AuditLogAgeLimit", "DefaultAuditSet", *LIST_PARAMETERS, *CUSTOM_ATTRIBUTES],
        )
        if bound.get("Identity") in (None, ""):
            raise errors.binding(
                "Cannot process command because of one or more missing mandatory parameters: Identity."
            )
        mailbox = self.mailbox(str(bound["Identity"]))
        new: dict[str, Any] = {}
        if "AuditEnabled" in bound:
            new["AuditEnabled"] = params.to_bool("AuditEnabled", bound["AuditEnabled"])
        if "AuditLogAgeLimit" in bound:
            new["AuditLogAgeLimit"] = params.to_timespan("AuditLogAgeLimit", bound["AuditLogAgeLimit"])
        for name in CUSTOM_ATTRIBUTES:  # free text up to 1024 characters (the audit-pipeline canary writes one)
            if name in bound:
                value = "" if bound[name] is None else bound[name]
                if not isinstance(value, str) or len(value) > 1024:
                    raise errors.conversion(name, value, "System.String")
                new[name] = value
        default_set = list(mailbox.get("DefaultAuditSet") or [])
        lists = {p: list(mailbox.get(p) or []) for p in LIST_PARAMETERS}
        if "DefaultAuditSet" in bound:
            # Handing logon types back to Microsoft resets their lists to the managed defaults.
            default_set = self._logon_types(bound["DefaultAuditSet"])
            for param, logon in LIST_PARAMETERS.items():
                if logon in default_set:
                    lists[param] = list(self.default_actions[logon])
            new["DefaultAuditSet"] = default_set
        for param, logon in LIST_PARAMETERS.items():
            if param in bound:
                lists[param] = self._audit_list(mailbox, param, logon, lists[param], bound[param])
                # An explicit list freezes that logon type: it leaves DefaultAuditSet.
                default_set = [t for t in default_set if t != logon]
                new["DefaultAuditSet"] = default_set
                new[param] = lists[param]
            elif "DefaultAuditSet" in bound:
                new[param] = lists[param]
        changed = {k: v for k, v in new.items() if mailbox.get(k) != v}
        mailbox.update(changed)
        return CmdletResult([], [] if changed else [not_modified(str(mailbox.get("Name")))])

    @staticmethod
    def _logon_types(value: Any) -> list[str]:
        canonical = {t.lower(): t for t in LOGON_TYPES}
        chosen = set()
        for item in params.to_strings("DefaultAuditSet", value):
            if item.lower() not in canonical:
                raise errors.enumeration(
                    "DefaultAuditSet", item, "Microsoft.Exchange.Data.Directory.MailboxAuditLogonType", LOGON_TYPES
                )
            chosen.add(canonical[item.lower()])
        return [t for t in LOGON_TYPES if t in chosen]

    def _audit_list(self, mailbox: dict[str, Any], param: str, logon: str, current: list[str], value: Any) -> list[str]:
        """The new action list for one logon type: a replacement list or a GenericHashTable Add/Remove."""
        if isinstance(value, dict):
            add, remove = params.hashtable(param, value)
            add, remove = self._actions(param, logon, add), self._actions(param, logon, remove, removing=True)
            result = current + [a for a in add if a not in current]
            result = [a for a in result if a not in remove]
        else:
            result = self._actions(param, logon, params.to_strings(param, value))
            result = [] if result == ["None"] else [a for a in result if a != "None"]
        added = set(result) - set(current)
        capabilities = {str(c).lower() for c in mailbox.get("PersistedCapabilities") or []}
        gated = sorted(added & LICENSED)
        if self.licence_gate and gated and "m365auditing" not in capabilities:
            raise errors.make(
                400,
                errors.VALIDATION,
                f"Auditing of {gated[0]} event is only available for users with appropriate license",
            )
        return result

    @staticmethod
    def _actions(param: str, logon: str, names: list[str], removing: bool = False) -> list[str]:
        """Canonical action names, de-duplicated; unknown names and ones the logon type refuses fail."""
        result: list[str] = []
        for name in names:
            action = CANONICAL.get(name.lower())
            if action is None:
                raise errors.enumeration(
                    param, name, "Microsoft.Exchange.Data.Directory.MailboxAuditOperations", ALL_ACTIONS
                )
            if action != "None" and action not in ALLOWED[logon] and not removing:
                raise errors.make(
                    400,
                    errors.VALIDATION,
                    f"The audit operation '{action}' isn't valid for {param}. Valid values for the "
                    f"{logon} logon type are: {', '.join(sorted(ALLOWED[logon]))}.",
                )
            if action not in result:
                result.append(action)
        return result

    # ---- accepted domains -----------------------------------------------------------------------------------

    def _get_accepted_domains(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Identity"])
        rows = [
            {
                "Name": domain,
                "Identity": domain,
                "DomainName": domain,
                "DomainType": "Authoritative",
                "Default": index == 0,
            }
            for index, domain in enumerate(self.accepted_domains)
        ]
        if (identity := bound.get("Identity")) is not None:
            rows = [row for row in rows if row["DomainName"] == str(identity).lower()]
            if not rows:
                raise errors.not_found(str(identity))
        return CmdletResult(rows)

    # ---- bypass associations --------------------------------------------------------------------------------

    def _get_bypass(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Identity", "ResultSize"])
        size = params.result_size(bound.get("ResultSize"))
        if bound.get("Identity") is not None:
            return CmdletResult([self.bypass_association(str(bound["Identity"]))], render=dict, paged=True)
        return self._collect(self.bypass_associations, [], size, dict)

    def _set_bypass(self, parameters: dict[str, Any], anchor: str | None) -> CmdletResult:
        bound = params.bind(parameters, ["Identity", "AuditBypassEnabled"])
        if bound.get("Identity") in (None, ""):
            raise errors.binding(
                "Cannot process command because of one or more missing mandatory parameters: Identity."
            )
        association = self.bypass_association(str(bound["Identity"]))
        changes = {}
        if "AuditBypassEnabled" in bound:
            changes["AuditBypassEnabled"] = params.to_bool("AuditBypassEnabled", bound["AuditBypassEnabled"])
        return self._apply(association, changes, str(association.get("Name")))
