"""Where a run finds the tenants register, and the per-tenant settings of a run (one loader for every tenant).

AUDIT_TENANTS_FILE when set (the command line; the Function App too); else, for the Function App's triggers, the
`tenants` table (AUDIT_TENANTS_TABLE) in its storage account: one row per tenant, RowKey the tenant id, columns
`organization`, `cloud`, `display_name` and `settings` (the overrides as a JSON object). No register (no file set,
no table or an empty one): the single tenant of the EXO_* settings, exactly as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from shared.activity.table_store import table_client
from shared.config import loader
from shared.config.loader import RunSettings
from shared.config.settings import ConfigError
from shared.config.tenants import Tenant, TenantRegister, TenantsFileError, load_tenants, parse_entry
from shared.runtime.state import CLOUD_TRIGGERS
from shared.storage_errors import storage_reason

log = logging.getLogger("mailbox_audit_guard.tenants")

TABLE_COLUMNS = ("organization", "cloud", "display_name", "settings")


class RegisterError(Exception):
    """The register exists but cannot be used as a whole (unreadable file or table, not a list): nothing runs."""


def load_register(env: Mapping[str, str], trigger: str) -> TenantRegister | None:
    """The register this deployment runs from, or None for the single-tenant settings; RegisterError when it is
    configured but unusable (a ConfigError for a bad AUDIT_TENANTS_* setting)."""
    settings = loader.tenants_for(env)
    if settings.file is not None:
        try:
            return load_tenants(settings.file)
        except TenantsFileError as exc:
            raise RegisterError(f"AUDIT_TENANTS_FILE: {exc}; fix the file or unset the variable") from None
    if trigger not in CLOUD_TRIGGERS:
        return None
    storage = loader.storage_for(env)
    if storage is None or not storage.configured or not storage.has_tables:
        return None  # no table service: there can be no tenants table
    register = read_table(storage, settings.table_name)
    return register if register is not None and (register.tenants or register.rejected) else None


def read_table(storage: loader.StorageSettings, table_name: str) -> TenantRegister | None:
    """The register's rows in table order (position = row number from 1), or None when the table does not exist."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    try:
        client = table_client(storage, table_name, retry_total=1)
    except Exception as exc:  # StateError: storage not usable for tables
        raise RegisterError(f"the tenants table {table_name} cannot be opened: {exc}") from None
    with contextlib.closing(client):
        try:
            rows = list(client.list_entities())
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise RegisterError(
                f"the tenants table {table_name} cannot be read: "
                f"{storage_reason(exc, role='the Storage Table Data Reader role')}"
            ) from None
    tenants: list[Tenant] = []
    rejected = []
    seen: set[str] = set()
    for position, row in enumerate(rows, start=1):
        outcome = parse_entry(row_entry(row), position)
        if isinstance(outcome, Tenant):
            if outcome.tenant_id in seen:
                continue  # RowKey is unique within a partition only; the first row counts
            seen.add(outcome.tenant_id)
            tenants.append(outcome)
        else:
            rejected.append(outcome)
    return TenantRegister(tuple(tenants), tuple(rejected), f"table {table_name}")


def row_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """A table row in the register file's shape; `settings` is JSON text in the table (a column is flat)."""
    entry: dict[str, Any] = {"tenant_id": row.get("RowKey")}
    for column in TABLE_COLUMNS:
        value = row.get(column)
        if value is None or value == "":
            continue
        if column == "settings" and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = "not JSON"  # refused by parse_entry: "settings must be an object"
        entry[column] = value
    return entry


def tenant_config(env: Mapping[str, str], tenant: Tenant) -> RunSettings | ConfigError:
    """The tenant's run settings: the deployment's, with the tenant's identity and policy overrides, through the
    one loader (a refusal is returned, for the run to report)."""
    config = loader.try_load(tenant.environment(env))
    # A managed identity's token is for its own tenant (the deployment's) only: sent for another, it is the wrong one.
    foreign = tenant.tenant_id != loader.reported_tenant(env)
    if isinstance(config, RunSettings) and config.exchange.auth_mode == "managed_identity" and foreign:
        return ConfigError(
            {
                "EXO_AUTH_MODE": "managed_identity signs in to the identity's own tenant only; with a tenants "
                "register use federated_identity (or certificate) for the other tenants"
            }
        )
    return config
