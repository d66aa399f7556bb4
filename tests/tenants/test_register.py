"""The tenants register: each entry validated on its own, a bad one named by position and field, the others kept;
per-tenant settings come from the one loader with only the audit policy overridden."""

from __future__ import annotations

import json

import pytest

from shared.config import loader
from shared.config.tenants import OVERRIDABLE, TenantsFileError, load_tenants, parse_tenants

A = "11111111-1111-1111-1111-111111111111"
B = "22222222-2222-2222-2222-222222222222"


def entry(tenant_id=A, organization="fabrikam.onmicrosoft.com", **fields):
    return {"tenant_id": tenant_id, "organization": organization, **fields}


def test_a_bad_entry_is_named_by_position_and_field_and_the_others_are_kept():
    register = parse_tenants(
        [
            entry(A, display_name="Fabrikam"),
            entry("not-a-guid"),
            entry(B, "contoso.onmicrosoft.com", cloud="moon"),
            entry(B, "contoso.onmicrosoft.com", settings={"EXO_CLIENT_SECRET": "x"}),
            entry(B, "contoso.onmicrosoft.com", settings={"MAILBOX_AUDIT_BASELINE": "strict"}),
            entry(B.upper(), "Contoso.onmicrosoft.com", settings={"MAILBOX_AUDIT_MIN_RETENTION_DAYS": 180}),
            entry(A, "again.onmicrosoft.com"),
            {**entry("33333333-3333-3333-3333-333333333333"), "colour": "blue"},
        ]
    )
    assert [t.tenant_id for t in register.tenants] == [A, B]
    assert register.tenants[1].organization == "contoso.onmicrosoft.com"
    assert register.tenants[1].settings == {"MAILBOX_AUDIT_MIN_RETENTION_DAYS": "180"}
    assert [(r.position, r.field) for r in register.rejected] == [
        (2, "tenant_id"),
        (3, "cloud"),
        (4, "settings.EXO_CLIENT_SECRET"),
        (5, "settings.MAILBOX_AUDIT_BASELINE"),
        (7, "tenant_id"),
        (8, "colour"),
    ]
    assert (
        register.rejected[3].message
        == "tenant 5: settings.MAILBOX_AUDIT_BASELINE: must be one of cis, cis-v4, microsoft-default"
    )
    assert register.refusal(B) is not None and register.find(B) is not None  # the valid entry for B still runs


def test_only_the_audit_policy_settings_may_be_overridden():
    assert "MAILBOX_AUDIT_BASELINE" in OVERRIDABLE and "AUDIT_EXCEPTIONS_FILE" in OVERRIDABLE
    assert not any(
        name.startswith(("EXO_", "AzureWebJobs", "APPLICATIONINSIGHTS", "AUDIT_MODE")) for name in OVERRIDABLE
    )


@pytest.mark.parametrize("document", [{}, "x", [1], None])
def test_a_register_that_is_not_a_list_of_objects_is_refused_as_a_whole(document):
    with pytest.raises(TenantsFileError):
        parse_tenants(document)


def test_the_file_is_read_with_the_exception_registers_rules(tmp_path):
    path = tmp_path / "tenants.json"
    path.write_text("\ufeff" + json.dumps([entry()]), encoding="utf-8")
    assert load_tenants(path).tenants[0].tenant_id == A
    path.write_text("{not json")
    with pytest.raises(TenantsFileError, match="not valid JSON"):
        load_tenants(path)
    with pytest.raises(TenantsFileError, match="cannot be read"):
        load_tenants(tmp_path / "missing.json")


def test_a_tenants_run_settings_are_the_deployments_with_its_identity_and_policy(tmp_path):
    base = {
        "EXO_TENANT_ID": B,
        "EXO_AUTH_MODE": "secret",
        "EXO_CLIENT_ID": "33333333-3333-3333-3333-333333333333",
        "EXO_CLIENT_SECRET": "s",
        "MAILBOX_AUDIT_BASELINE": "cis-v4",
    }
    [tenant] = parse_tenants(
        [entry(cloud="gcchigh", settings={"MAILBOX_AUDIT_MIN_RETENTION_DAYS": 365}, display_name="Fabrikam")]
    ).tenants
    config = loader.load(tenant.environment(base))
    assert config.exchange.tenant_id == A and config.exchange.organization == "fabrikam.onmicrosoft.com"
    assert config.exchange.cloud.name == "gcchigh"
    assert config.policy.min_retention_days == 365  # the tenant's own
    assert config.policy.baseline == "cis-v4"  # the deployment's, not overridden
    assert config.feed.publisher_id == A
    assert loader.load(base).policy.min_retention_days == 90  # the base is untouched
    assert tenant.name == "Fabrikam"


def test_the_function_apps_tenants_table_is_read_like_the_file(azurite_tables):
    """The `tenants` table on a real Azurite: RowKey the tenant, `settings` JSON text, positions in table order."""
    import uuid

    from azure.data.tables import TableClient

    from shared.runtime.tenants import load_register

    table = f"t{uuid.uuid4().hex[:12]}"
    env = {"AzureWebJobsStorage": azurite_tables.connection_string, "AUDIT_TENANTS_TABLE": table}
    assert load_register(env, "timer") is None  # no table: the single-tenant settings
    with TableClient.from_connection_string(azurite_tables.connection_string, table) as client:
        client.create_table()
        assert load_register(env, "timer") is None  # an empty table too
        client.create_entity(
            {
                "PartitionKey": "tenant",
                "RowKey": A,
                "organization": "fabrikam.onmicrosoft.com",
                "settings": json.dumps({"MAILBOX_AUDIT_MIN_RETENTION_DAYS": 180}),
            }
        )
        client.create_entity({"PartitionKey": "tenant", "RowKey": B, "organization": "x", "settings": "{"})
    register = load_register(env, "queue")
    assert register is not None and register.source == f"table {table}"
    assert [(t.tenant_id, dict(t.settings)) for t in register.tenants] == [
        (A, {"MAILBOX_AUDIT_MIN_RETENTION_DAYS": "180"})
    ]
    assert [(r.position, r.field, r.tenant_id) for r in register.rejected] == [(2, "organization", B)]
    assert load_register(env, "cli") is None  # the command line reads AUDIT_TENANTS_FILE only


def test_report_takes_the_tenant_too(start_emulator, tmp_path):
    from tests.support.cli import run_cli
    from tests.support.tenant import TENANT_ID

    emu = start_emulator()
    path = tmp_path / "tenants.json"
    path.write_text(
        json.dumps([{"tenant_id": TENANT_ID, "organization": "contoso.onmicrosoft.com", "display_name": "Contoso"}])
    )
    out = tmp_path / "evidence.json"
    result = run_cli(
        emu,
        "report",
        "--tenant",
        TENANT_ID,
        "--format",
        "json",
        "--out",
        str(out),
        env={"AUDIT_TENANTS_FILE": str(path)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["tenant_name"] == "Contoso"


FABRIKAM = "9f9f9f9f-1111-2222-3333-444455556666"
HOME = "0b5c1c1e-1111-2222-3333-444455556666"


def test_a_tenant_never_inherits_another_tenants_exceptions_canary_or_cloud_hosts():
    from shared.config.tenants import Tenant

    base = {
        "EXO_TENANT_ID": HOME,
        "AUDIT_EXCEPTIONS_FILE": "/etc/contoso-exceptions.json",  # names contoso's mailboxes
        "AUDIT_CANARY_MAILBOX": "canary@contoso.com",
        "AUDIT_CANARY_WRITE": "audit-property",
        "EXO_ENDPOINT": "https://outlook.office365.com",
        "MAILBOX_AUDIT_BASELINE": "cis",
    }
    plain = Tenant(FABRIKAM, "fabrikam.onmicrosoft.com").environment(base)
    assert "AUDIT_EXCEPTIONS_FILE" not in plain and "AUDIT_CANARY_MAILBOX" not in plain
    assert "AUDIT_CANARY_WRITE" not in plain
    assert plain["MAILBOX_AUDIT_BASELINE"] == "cis" and plain["EXO_ENDPOINT"] == "https://outlook.office365.com"
    own = Tenant(
        FABRIKAM,
        "fabrikam.onmicrosoft.com",
        cloud="gcchigh",
        settings={"AUDIT_EXCEPTIONS_FILE": "/etc/fabrikam.json", "AUDIT_CANARY_MAILBOX": "canary@fabrikam.com"},
    ).environment(base)
    assert own["AUDIT_EXCEPTIONS_FILE"] == "/etc/fabrikam.json"
    assert own["AUDIT_CANARY_MAILBOX"] == "canary@fabrikam.com"
    assert "EXO_ENDPOINT" not in own  # the commercial host never carries a GCC High tenant's token
    assert own["EXO_CLOUD"] == "gcchigh"


def test_a_managed_identity_is_refused_for_any_tenant_but_its_own():
    from shared.config.loader import RunSettings
    from shared.config.settings import ConfigError
    from shared.config.tenants import Tenant
    from shared.runtime.tenants import tenant_config

    base = {"EXO_TENANT_ID": HOME, "EXO_AUTH_MODE": "managed_identity", "EXO_ORGANIZATION": "contoso.onmicrosoft.com"}
    refused = tenant_config(base, Tenant(FABRIKAM, "fabrikam.onmicrosoft.com"))
    assert isinstance(refused, ConfigError) and "EXO_AUTH_MODE" in refused.problems
    assert "federated_identity" in refused.problems["EXO_AUTH_MODE"]
    assert isinstance(tenant_config(base, Tenant(HOME, "contoso.onmicrosoft.com")), RunSettings)
