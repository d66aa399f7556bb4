"""Scenario files: load, validate, fill defaults, and expand the cheap generators used for scale tests."""

from __future__ import annotations

import gc
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

from .activity import activity_settings, audit_records
from .audit_actions import LOGON_TYPES, V7_DEFAULTS
from .audit_search import audit_search_settings

DEFAULT_TENANT_ID = "0b5c1c1e-1111-2222-3333-444455556666"
DEFAULT_ORGANIZATION = "contoso.onmicrosoft.com"
CUSTOMISATION_DELAY_SECONDS = 3600.0  # Microsoft: allow 60 minutes after Enable-OrganizationCustomization
RECIPIENT_TYPES = (
    "UserMailbox",
    "SharedMailbox",
    "RoomMailbox",
    "EquipmentMailbox",
    "DiscoveryMailbox",
    "GroupMailbox",
)
LIST_FIELDS = ("AuditAdmin", "AuditDelegate", "AuditOwner", "DefaultAuditSet", "PersistedCapabilities")
# The mailbox properties the emulator models, in the order Get-Mailbox returns them.
MAILBOX_FIELDS = (
    "Name",
    "UserPrincipalName",
    "PrimarySmtpAddress",
    "ExternalDirectoryObjectId",
    "Guid",
    "ExchangeGuid",
    "RecipientTypeDetails",
    "AuditEnabled",
    "AuditAdmin",
    "AuditDelegate",
    "AuditOwner",
    "DefaultAuditSet",
    "AuditLogAgeLimit",
    "PersistedCapabilities",
)
KNOWN_KEYS = frozenset(
    {
        "tenant_id",
        "organization",
        "principal",
        "organization_config",
        "admin_audit_log_config",
        "mailboxes",
        "generate_mailboxes",
        "bypass_associations",
        "generate_bypass_associations",
        "faults",
        "licence_gate",
        "default_actions",
        "cursor_ttl_seconds",
        "customisation_delay_seconds",
        "description",
        "graph",
        "quirks",
        "audit_records",
        "activity_feed",
        "accepted_domains",
        "audit_search",
        "compliance",
        "exchange_rbac",
        "tenants",
        "generate_tenants",
        "consented",
    }
)
# Behaviours of the real service the emulator copies by default (exchange-admin-api.md §10; emulator-spec.md
# "Quirks"); a scenario may switch one off when a test needs the older, kinder emulator.
QUIRK_DEFAULTS: dict[str, bool] = {
    "paging_warning_every_page": True,
    "reject_dollar_booleans": True,
    "anchor_bound_cursors": True,
    "real_error_bodies": True,
}


def load_scenario(source: dict[str, Any] | str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Return a new scenario dict with every default filled in; `source` is a dict, a JSON file path or None.

    Generators (`generate_mailboxes`, `generate_bypass_associations`) stay as specs; TenantState expands them,
    so loading twice is cheap and idempotent. Raises ValueError for unknown keys or invalid values.
    """
    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, dict):
        raw = source
    else:
        with open(source, encoding="utf-8") as handle:
            raw = json.load(handle)
    unknown = sorted(k for k in raw if k not in KNOWN_KEYS and not k.startswith("_"))
    if unknown:
        raise ValueError(f"unknown scenario keys: {', '.join(unknown)}")

    tenant_id = str(raw.get("tenant_id") or DEFAULT_TENANT_ID)
    organization = str(raw.get("organization") or DEFAULT_ORGANIZATION)
    principal = dict(raw.get("principal") or {})
    principal.setdefault("roles", ["Exchange.ManageAsApp"])
    principal.setdefault("directory_roles", ["Exchange Administrator"])
    defaults = {t: list(raw.get("default_actions", {}).get(t, V7_DEFAULTS[t])) for t in LOGON_TYPES}

    scenario = {
        "tenant_id": tenant_id,
        "organization": organization,
        "principal": principal,
        "organization_config": {
            "Name": organization,
            "AuditDisabled": False,
            "IsDehydrated": False,
            **(raw.get("organization_config") or {}),
        },
        "admin_audit_log_config": {
            "Name": "Admin Audit Log Settings",
            "UnifiedAuditLogIngestionEnabled": True,
            "AdminAuditLogEnabled": True,
            "AdminAuditLogAgeLimit": "90.00:00:00",
            **(raw.get("admin_audit_log_config") or {}),
        },
        "default_actions": defaults,
        "mailboxes": [fill_mailbox(m, tenant_id, organization, defaults) for m in raw.get("mailboxes") or []],
        "generate_mailboxes": dict(raw.get("generate_mailboxes") or {"count": 0}),
        "bypass_associations": [fill_bypass(b, tenant_id) for b in raw.get("bypass_associations") or []],
        "generate_bypass_associations": dict(raw.get("generate_bypass_associations") or {"count": 0}),
        "faults": [dict(f) for f in raw.get("faults") or []],
        "licence_gate": bool(raw.get("licence_gate", False)),
        "cursor_ttl_seconds": float(raw.get("cursor_ttl_seconds", 1800)),
        # After Enable-OrganizationCustomization, org-wide writes stay refused this long (IsDehydrated flips at
        # once). Real tenants: up to 60 min, so that is the default; scenarios and tests set it explicitly.
        "customisation_delay_seconds": _seconds(raw.get("customisation_delay_seconds", CUSTOMISATION_DELAY_SECONDS)),
        "graph": _graph_settings(raw.get("graph")),
        "quirks": _quirks(raw.get("quirks")),
        # The Management Activity API (emulator/activity.py): records to publish and the feed's switches.
        "audit_records": audit_records(raw.get("audit_records")),
        "activity_feed": activity_settings(raw.get("activity_feed")),
        # Microsoft Graph's audit log query API (emulator/audit_search.py): its knobs.
        "audit_search": audit_search_settings(raw.get("audit_search")),
        # Security & Compliance (emulator/compliance.py): audit retention policies, Audit (Premium), the region.
        "compliance": dict(raw.get("compliance") or {}),
        # Exchange RBAC for applications (emulator/rbac.py) and the administrators who may sign in delegated.
        "exchange_rbac": _rbac_settings(raw.get("exchange_rbac"), organization),
    }
    scenario["accepted_domains"] = _accepted_domains(raw.get("accepted_domains"), organization, scenario["mailboxes"])
    # More tenants behind the same Exchange, Entra ID and feed (emulator-spec.md "Many tenants"): scenarios of their
    # own (without faults or quirks: those are the emulator's), expanded when first asked for.
    scenario["tenants"] = [_guest(dict(g)) for g in raw.get("tenants") or []]
    scenario["generate_tenants"] = dict(raw.get("generate_tenants") or {"count": 0})
    scenario["consented"] = bool(raw.get("consented", True))
    if "description" in raw:
        scenario["description"] = raw["description"]
    return scenario


def _guest(raw: dict[str, Any]) -> dict[str, Any]:
    if not raw.get("tenant_id") or not raw.get("organization"):
        raise ValueError("every entry of tenants needs its own tenant_id and organization")
    shared = sorted(k for k in raw if k in ("faults", "quirks", "tenants", "generate_tenants"))
    if shared:
        raise ValueError(f"a guest tenant cannot set {', '.join(shared)}: they belong to the whole emulator")
    return raw


def generated_guests(spec: dict[str, Any], home_tenant: str) -> list[dict[str, Any]]:
    """`generate_tenants: {"count": N, "template": {...}}`: N guest scenarios, ids uuid5 of the home tenant and i."""
    template = dict(spec.get("template") or {})
    guests = []
    for i in range(int(spec.get("count", 0))):
        tenant_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{home_tenant}/guest/{i}"))
        guests.append({**template, "tenant_id": tenant_id, "organization": f"tenant{i:04d}.onmicrosoft.com"})
    return guests


def _accepted_domains(raw: Any, organization: str, mailboxes: list[dict[str, Any]]) -> list[str]:
    """Get-AcceptedDomain's domains: as given, else the organization's and those of the mailboxes' addresses."""
    if raw is not None:
        if not isinstance(raw, list) or not all(isinstance(name, str) and "." in name for name in raw):
            raise ValueError("accepted_domains must be a list of domain names")
        return [name.lower() for name in raw]
    found = [organization.lower()]
    for mailbox in mailboxes:
        domain = str(mailbox.get("PrimarySmtpAddress") or "").rpartition("@")[2].lower()
        if domain and domain not in found:
            found.append(domain)
    return found


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86400:
        raise ValueError(f"customisation_delay_seconds must be a number of seconds from 0 to 86400, not {value!r}")
    return float(value)


def _quirks(raw: Any) -> dict[str, bool]:
    """`{"quirks": {"real_error_bodies": false, ...}}`: booleans over QUIRK_DEFAULTS."""
    given = dict(raw or {})
    unknown = sorted(k for k in given if k not in QUIRK_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown quirks: {', '.join(unknown)}; expected some of {', '.join(QUIRK_DEFAULTS)}")
    for name, value in given.items():
        if not isinstance(value, bool):
            raise ValueError(f"quirks.{name} must be true or false")
    return {**QUIRK_DEFAULTS, **given}


RBAC_KEYS = frozenset({"app_roles", "service_principals", "role_groups", "admins"})


def _rbac_settings(raw: Any, organization: str) -> dict[str, Any]:
    """`{"app_roles": [...], "service_principals": [...], "role_groups": [...], "admins": [...]}`.

    `admins` are the users who may sign in delegated (grant-permissions), each `{"upn", "directory_roles"}`;
    default: admin@<organization> holding Exchange Administrator."""
    rbac = dict(raw or {})
    unknown = sorted(k for k in rbac if k not in RBAC_KEYS)
    if unknown:
        raise ValueError(f"unknown exchange_rbac keys: {', '.join(unknown)}")
    for key in ("app_roles", "service_principals", "role_groups"):
        if not isinstance(rbac.get(key, []), list):
            raise ValueError(f"exchange_rbac.{key} must be a list")
    admins = rbac.get("admins", [{"upn": f"admin@{organization}", "directory_roles": ["Exchange Administrator"]}])
    if not isinstance(admins, list) or not all(isinstance(a, dict) and isinstance(a.get("upn"), str) for a in admins):
        raise ValueError('exchange_rbac.admins must be a list of {"upn": ..., "directory_roles": [...]}')
    rbac["admins"] = [
        {"upn": a["upn"].lower(), "directory_roles": [str(r) for r in a.get("directory_roles") or []]} for a in admins
    ]
    return rbac


def _graph_settings(raw: Any) -> dict[str, Any]:
    """`{"caller_permissions": [...]}`: the Graph permissions (token `roles`) a Graph token carries."""
    graph = dict(raw or {})
    unknown = sorted(k for k in graph if k != "caller_permissions")
    if unknown:
        raise ValueError(f"unknown graph scenario keys: {', '.join(unknown)}")
    if "caller_permissions" in graph:
        permissions = graph["caller_permissions"]
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            raise ValueError("graph.caller_permissions must be a list of permission names")
        graph["caller_permissions"] = list(permissions)
    return graph


def _stable_guid(tenant_id: str, *parts: object) -> str:
    """Deterministic GUIDs, so the same scenario yields the same ids on every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join([tenant_id, *map(str, parts)])))


def fill_mailbox(
    given: dict[str, Any], tenant_id: str, organization: str, defaults: dict[str, list[str]]
) -> dict[str, Any]:
    """A complete stored mailbox from a partial one (lists copied, so callers never share them)."""
    upn = given.get("UserPrincipalName") or given.get("PrimarySmtpAddress")
    name = given.get("Name") or (upn.split("@", 1)[0] if upn else None)
    if not name:
        raise ValueError(f"mailbox needs a Name or UserPrincipalName: {given!r}")
    upn = upn or f"{name}@{organization}"
    mailbox: dict[str, Any] = {
        "Name": name,
        "UserPrincipalName": upn,
        "PrimarySmtpAddress": given.get("PrimarySmtpAddress") or upn,
        "ExternalDirectoryObjectId": _stable_guid(tenant_id, "mailbox", name, "entra"),
        "Guid": _stable_guid(tenant_id, "mailbox", name, "guid"),
        "ExchangeGuid": _stable_guid(tenant_id, "mailbox", name, "exchange"),
        "RecipientTypeDetails": "UserMailbox",
        "AuditEnabled": False,
        "AuditAdmin": defaults["Admin"],
        "AuditDelegate": defaults["Delegate"],
        "AuditOwner": defaults["Owner"],
        "DefaultAuditSet": list(LOGON_TYPES),
        "AuditLogAgeLimit": "90.00:00:00",
        "PersistedCapabilities": [],
    }
    mailbox.update({k: v for k, v in given.items() if k not in ("Name", "UserPrincipalName", "PrimarySmtpAddress")})
    _check_mailbox(mailbox)
    for field in LIST_FIELDS:
        mailbox[field] = list(mailbox[field])
    return mailbox


def _check_mailbox(mailbox: dict[str, Any]) -> None:
    if mailbox["RecipientTypeDetails"] not in RECIPIENT_TYPES:
        raise ValueError(f"{mailbox['Name']}: RecipientTypeDetails must be one of {', '.join(RECIPIENT_TYPES)}")
    if not isinstance(mailbox["AuditEnabled"], bool):
        raise ValueError(f"{mailbox['Name']}: AuditEnabled must be true or false")
    for field in LIST_FIELDS:
        if not isinstance(mailbox[field], list | tuple):
            raise ValueError(f"{mailbox['Name']}: {field} must be a list")


def fill_bypass(given: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """A complete bypass association: Name, Identity (defaults to Name), Guid, AuditBypassEnabled (False)."""
    if not given.get("Name"):
        raise ValueError(f"bypass association needs a Name: {given!r}")
    return {
        "Name": given["Name"],
        "Identity": given["Name"],
        "Guid": _stable_guid(tenant_id, "bypass", given["Name"]),
        "AuditBypassEnabled": False,
        **given,
    }


def generate_mailboxes(
    spec: dict[str, Any], tenant_id: str, organization: str, defaults: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """`{"count": N, "template": {...}, "start": 0, "variants": [{"every": K, "offset": 0, "set": {...}}]}`.

    String template values may use `{i}` (the mailbox number); addresses default to `<Name>@<organization>`.
    GUIDs are derived from the number rather than hashed or random, so 100,000 mailboxes build in well under a
    second.
    """
    count, start = int(spec.get("count", 0)), int(spec.get("start", 0))
    if count <= 0:
        return []
    template = dict(spec.get("template") or {})
    template.setdefault("Name", "user{i:06d}")
    formatted = {k: v for k, v in template.items() if isinstance(v, str) and "{" in v}
    base = fill_mailbox(
        {k: (v.format(i=0) if k in formatted else v) for k, v in template.items()}, tenant_id, organization, defaults
    )
    name_pattern, domain = template["Name"], f"@{organization}"
    upn_pattern = template.get("UserPrincipalName")
    smtp_pattern = template.get("PrimarySmtpAddress") or upn_pattern
    for key in ("Name", "UserPrincipalName", "PrimarySmtpAddress"):
        formatted.pop(key, None)
    variants = [
        (int(v["every"]), int(v.get("offset", 0)), dict(v["set"]))
        for v in spec.get("variants") or []
        if int(v["every"]) > 0
    ]
    suffix = int(uuid.UUID(tenant_id).hex[-8:], 16) if _is_guid(tenant_id) else 0
    edoid_tail, guid_tail, exchange_tail = (f"-0000-4000-8000-0{kind}{suffix:010x}" for kind in "abc")
    admin, delegate, owner, default_set, capabilities = (base[f] for f in LIST_FIELDS)
    mailboxes = []
    # Every mailbox holds five fresh lists; the cyclic GC would rescan the growing heap again and again while
    # they are created (about half the build time), and none of them can form a cycle.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(start, start + count):
            name = name_pattern.format(i=i)
            upn = upn_pattern.format(i=i) if upn_pattern else name + domain
            head = f"{i:08x}"
            mailbox = dict(base)
            mailbox.update(
                Name=name,
                UserPrincipalName=upn,
                PrimarySmtpAddress=smtp_pattern.format(i=i) if smtp_pattern else upn,
                ExternalDirectoryObjectId=head + edoid_tail,
                Guid=head + guid_tail,
                ExchangeGuid=head + exchange_tail,
                AuditAdmin=admin[:],
                AuditDelegate=delegate[:],
                AuditOwner=owner[:],
                DefaultAuditSet=default_set[:],
                PersistedCapabilities=capabilities[:],
            )
            for key, pattern in formatted.items():
                mailbox[key] = pattern.format(i=i)
            for every, offset, values in variants:
                if i % every == offset:
                    mailbox.update({k: (list(v) if isinstance(v, list) else v) for k, v in values.items()})
            mailboxes.append(mailbox)
    finally:
        if gc_was_enabled:
            gc.enable()
    return mailboxes


def generate_bypass_associations(spec: dict[str, Any], tenant_id: str) -> Iterator[dict[str, Any]]:
    """`{"count": N, "enabled_every": K}`: names `bypass-000000`..., every K-th one enabled (0 = none)."""
    count, every = int(spec.get("count", 0)), int(spec.get("enabled_every", 0))
    for i in range(count):
        name = f"bypass-{i:06d}"
        yield {
            "Name": name,
            "Identity": name,
            "Guid": f"{i:08x}-0000-4000-8000-0d0000000000",
            "AuditBypassEnabled": every > 0 and i % every == 0,
        }


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
