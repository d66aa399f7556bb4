"""The Bicep files, parsed with pycep-parser: resource types and API versions, identity-only access, app settings,
alert wiring and no secrets. `bicep build` and a real deployment stay the final word (infra/README.md)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.validators import BICEP_FILES, INFRA, REPO, body, loaded_file, ref, walk

API_VERSIONS = {
    "Microsoft.Resources/resourceGroups": "2024-03-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2023-01-31",
    "Microsoft.Storage/storageAccounts": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices/queues": "2023-05-01",
    "Microsoft.Storage/storageAccounts/tableServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "2023-05-01",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.Web/serverfarms": "2024-04-01",
    "Microsoft.Web/sites": "2024-04-01",
    "Microsoft.Web/sites/config": "2024-04-01",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "2024-04-01",
    "Microsoft.Insights/actionGroups": "2023-01-01",
    "Microsoft.Insights/scheduledQueryRules": "2023-12-01",
    "Microsoft.Insights/workbooks": "2023-06-01",
}

ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

# alert module in alerts.bicep -> (query file, severity); the issue fixes the severities.
ALERTS = {
    "nonCompliance": ("../alerts/non-compliance.kql", 1),
    "checkFailed": ("../alerts/check-failed.kql", 2),
    "heartbeat": ("../alerts/heartbeat.kql", 1),
    "remediationApplied": ("../alerts/remediation-applied.kql", 3),
    "remediationFailed": ("../alerts/remediation-failed.kql", 2),
    "revert": ("../alerts/revert.kql", 0),
    "activityAlertHigh": ("../alerts/activity-alert-high.kql", 1),
    "activityAlertMedium": ("../alerts/activity-alert-medium.kql", 2),
    "watchFailed": ("../alerts/watch-failed.kql", 2),
    "watchHeartbeat": ("../alerts/watch-heartbeat.kql", 1),
    "feedLag": ("../alerts/feed-lag.kql", 2),
    "tenantPoisoned": ("../alerts/tenant-poisoned.kql", 1),
    "tenantHeartbeat": ("../alerts/tenant-heartbeat.kql", 1),
}
# The activity watch's rules: (evaluationFrequency, windowSize, dimensions). Event rules look back twice their
# frequency; the high alert is evaluated every 5 minutes and split down to the alert, so each one is an e-mail.
WATCH_RULES = {
    "activityAlertHigh": ("PT5M", "PT10M", ["tenant_id", "detection", "alert_id"]),
    "activityAlertMedium": ("PT15M", "PT30M", ["tenant_id", "detection"]),
    "watchFailed": ("PT15M", "PT30M", ["tenant_id"]),
    "feedLag": ("PT30M", "PT1H", ["tenant_id"]),
}

APP_SETTINGS = {
    "AzureWebJobsStorage__accountName": "storageAccountName",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": "identityClientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "appInsightsConnectionString",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=${identityClientId};Authorization=AAD",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
    "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME": "mailbox_audit_guard",
    "EXO_TENANT_ID": "exoTenantId",
    "EXO_ORGANIZATION": "exoOrganization",
    "EXO_CLOUD": "exoCloud",
    # Many tenants: with a multi-tenant app id, federated_identity (the identity is the app's credential).
    "EXO_AUTH_MODE": {
        "operator": {
            "type": "conditional",
            "operands": {
                "condition": "federated",
                "true_value": "federated_identity",
                "false_value": "managed_identity",
            },
        }
    },
    "EXO_CLIENT_ID": {
        "operator": {
            "type": "conditional",
            "operands": {"condition": "federated", "true_value": "multiTenantAppId", "false_value": "identityClientId"},
        }
    },
    "EXO_MANAGED_IDENTITY_CLIENT_ID": "identityClientId",
    "AUDIT_SCHEDULE": "auditSchedule",
    "AUDIT_MODE": "auditMode",
    "EVIDENCE_CONTAINER": "evidenceContainerName",
    "WATCH_SCHEDULE": "watchSchedule",
    "WATCH_TABLE_NAME": "watchTableName",
    "WATCH_CONTENT_TYPES": "watchContentTypes",
    "EXO_PERMISSION_MODEL": "permissionModel",
    "AUDIT_CANARY_MAILBOX": "canaryMailbox",
    "AUDIT_CANARY_WRITE": "canaryWrite",
    "AUDIT_RETENTION_POLICY_CHECK": "retentionPolicyCheck",
}

SECRET_NAME = re.compile(r"secret|password|passwd|pwd|token|key(?!vault)|sas|credential|cert", re.IGNORECASE)
SECRET_TEXT = re.compile(
    r"listKeys|listSecrets|listCredentials|AccountKey=|InstrumentationKey=|primaryKey|"
    r"@secure|SharedAccessSignature|keyValue",
    re.IGNORECASE,
)


def resources(bicep: dict[str, dict[str, Any]], file: str) -> dict[str, dict[str, Any]]:
    return bicep[file].get("resources", {})


@pytest.mark.parametrize("file", [p.relative_to(INFRA).as_posix() for p in BICEP_FILES])
def test_every_bicep_file_parses(bicep: dict[str, dict[str, Any]], file: str) -> None:
    assert bicep[file].get("resources") or bicep[file].get("modules"), f"{file} declares nothing"


def test_resource_types_and_api_versions_are_the_pinned_ones(bicep: dict[str, dict[str, Any]]) -> None:
    seen = set()
    for file, parsed in bicep.items():
        for name, resource in parsed.get("resources", {}).items():
            assert resource["type"] in API_VERSIONS, f"{file}:{name}: unexpected type {resource['type']}"
            assert resource["api_version"] == API_VERSIONS[resource["type"]], f"{file}:{name}"
            seen.add(resource["type"])
    assert seen == set(API_VERSIONS), f"types pinned but never declared: {set(API_VERSIONS) - seen}"


def test_modules_are_local_files_that_exist(bicep: dict[str, dict[str, Any]]) -> None:
    for file, parsed in bicep.items():
        for name, module in parsed.get("modules", {}).items():
            assert module["type"] == "local", f"{file}:{name}: registry modules need network access"
            assert (INFRA / file).parent.joinpath(module["detail"]["path"]).is_file(), f"{file}:{name}"


def test_main_creates_the_resource_group_and_outputs_what_azd_and_grant_permissions_need(
    bicep: dict[str, dict[str, Any]],
) -> None:
    main = bicep["main.bicep"]
    assert main["globals"]["scope"]["value"] == "subscription"
    assert resources(bicep, "main.bicep")["rg"]["config"]["tags"] == "tags"
    assert "'azd-env-name': environmentName" in (INFRA / "main.bicep").read_text()
    outputs = {name: ref(output["value"]) for name, output in main["outputs"].items()}
    assert outputs["FUNCTION_APP_NAME"] == "functionApp.outputs.name"
    assert outputs["IDENTITY_PRINCIPAL_ID"] == "identity.outputs.principalId"
    assert outputs["APPLICATIONINSIGHTS_NAME"] == "monitoring.outputs.appInsightsName"


def test_parameters_hold_no_secrets(bicep: dict[str, dict[str, Any]]) -> None:
    for file, parsed in bicep.items():
        for name, parameter in parsed.get("parameters", {}).items():
            decorators = {decorator["type"] for decorator in parameter["decorators"]}
            assert "secure" not in decorators, f"{file}: @secure() parameter {name}: no secrets in this deployment"
            assert not SECRET_NAME.search(name), f"{file}: parameter {name} looks like a secret"
    for path in BICEP_FILES:
        text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("//"))
        assert not SECRET_TEXT.search(text), f"{path.name}: {SECRET_TEXT.search(text).group(0)}"


def test_azd_parameter_file_matches_main(bicep: dict[str, dict[str, Any]]) -> None:
    declared = bicep["main.bicep"]["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(declared), f"unknown parameters: {set(given) - set(declared)}"
    required = {name for name, parameter in declared.items() if parameter["default"] is None}
    assert required <= set(given), f"azd would prompt for: {required - set(given)}"
    assert not any(SECRET_NAME.search(name) for name in given)


def test_azure_yaml_deploys_this_folder_as_the_python_function_service() -> None:
    text = (REPO / "azure.yaml").read_text()
    service = text.split("services:", 1)[1]
    assert re.search(r"^  api:\n(    .*\n)+", service, re.M), "service `api` missing"
    for line in ("project: .", "language: python", "host: function"):
        assert re.search(rf"^    {re.escape(line)}\s*$", service, re.M), line
    assert re.search(r"^  path: infra\s*$", text, re.M)


def test_storage_is_identity_only(bicep: dict[str, dict[str, Any]]) -> None:
    storage = resources(bicep, "modules/storage.bicep")
    properties = storage["account"]["config"]["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["allowBlobPublicAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True
    containers = {
        ref(c["config"]["name"]): c["config"]["properties"]["publicAccess"]
        for c in storage.values()
        if c["type"].endswith("/containers")
    }
    assert containers == {"deploymentContainerName": "None", "evidenceContainerName": "None"}
    main = bicep["main.bicep"]["modules"]
    assert main["storage"]["config"]["params"]["evidenceContainerName"] == "evidenceContainerName"
    assert main["functionApp"]["config"]["params"]["evidenceContainerName"] == "evidenceContainerName"
    assert bicep["main.bicep"]["variables"]["evidenceContainerName"]["value"] == "evidence"


def test_identity_gets_the_storage_and_monitoring_roles(bicep: dict[str, dict[str, Any]]) -> None:
    storage = bicep["modules/storage.bicep"]
    assignment = storage["resources"]["dataAccess"]["config"]
    assert assignment["loop_type"]["detail"]["array_name"] == "dataRoles"
    assert assignment["config"]["properties"]["principalType"] == "ServicePrincipal"
    assert assignment["config"]["scope"] == "account"
    assert {ROLES[r] for r in storage["variables"]["dataRoles"]["value"]} == {
        "Storage Blob Data Owner",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
    }

    monitoring = bicep["modules/monitoring.bicep"]
    publisher = monitoring["resources"]["publisher"]["config"]
    assert publisher["scope"] == "appInsights"
    assert publisher["properties"]["principalType"] == "ServicePrincipal"
    assert ROLES[monitoring["variables"]["monitoringMetricsPublisher"]["value"]] == "Monitoring Metrics Publisher"
    main = bicep["main.bicep"]["modules"]
    for module, param in (("storage", "dataPrincipalId"), ("monitoring", "publisherPrincipalId")):
        assert ref(main[module]["config"]["params"][param]) == "identity.outputs.principalId"


def test_app_insights_is_workspace_based_without_local_auth(bicep: dict[str, dict[str, Any]]) -> None:
    monitoring = resources(bicep, "modules/monitoring.bicep")
    component = monitoring["appInsights"]["config"]
    assert component["kind"] == "web"
    assert component["properties"]["DisableLocalAuth"] is True
    assert ref(component["properties"]["WorkspaceResourceId"]) == "workspace.id"
    assert monitoring["workspace"]["config"]["properties"]["sku"]["name"] == "PerGB2018"


def test_function_app_is_flex_python_313_locked_down(bicep: dict[str, dict[str, Any]]) -> None:
    app = resources(bicep, "modules/function-app.bicep")
    assert app["plan"]["config"]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = app["site"]["config"]
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert "azd-service-name': 'api'" in (INFRA / "modules/function-app.bicep").read_text()
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["ftpsState"] == "Disabled"
    config = properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    policies = {
        p["config"]["name"]: p["config"]["properties"]["allow"]
        for p in app.values()
        if p["type"].endswith("basicPublishingCredentialsPolicies")
    }
    assert policies == {"ftp": False, "scm": False}


def test_app_settings_are_the_documented_identity_based_ones(bicep: dict[str, dict[str, Any]]) -> None:
    settings_list = resources(bicep, "modules/function-app.bicep")["site"]["config"]["properties"]["siteConfig"][
        "appSettings"
    ]
    settings = {item["name"]: item["value"] for item in settings_list}
    assert len(settings) == len(settings_list), "duplicate app setting"
    assert settings == APP_SETTINGS
    assert not {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "AzureWebJobsStorage"} & set(settings)
    assert not any(
        SECRET_NAME.search(name)
        for name in settings
        if not name.startswith(("AzureWebJobsStorage__credential", "APPLICATIONINSIGHTS_AUTHENTICATION"))
    )
    documented = set(re.findall(r"`([A-Za-z][A-Za-z0-9_]+)", (REPO / "docs/telemetry.md").read_text()))
    assert set(settings) <= documented, f"not in docs/telemetry.md: {set(settings) - documented}"
    params = bicep["main.bicep"]["modules"]["functionApp"]["config"]["params"]
    assert ref(params["identityClientId"]) == "identity.outputs.clientId"


def test_easy_auth_only_with_a_remediation_client_id(bicep: dict[str, dict[str, Any]]) -> None:
    assert bicep["main.bicep"]["parameters"]["remediationClientId"]["default"] == ""
    auth = resources(bicep, "modules/function-app.bicep")["auth"]
    condition = auth["config"]["condition"]["operator"]
    assert condition["type"] == "not"
    assert condition["operands"]["bool_value"]["function"]["parameters"]["item_to_test"] == "remediationClientId"
    config = body(auth)
    assert config["name"] == "authsettingsV2"
    validation = config["properties"]["globalValidation"]
    assert validation == {"requireAuthentication": True, "unauthenticatedClientAction": "Return401"}
    entra = config["properties"]["identityProviders"]["azureActiveDirectory"]
    assert entra["enabled"] is True
    assert entra["registration"]["clientId"] == "remediationClientId"
    assert "clientSecretSettingName" not in entra["registration"]


def test_every_alert_is_a_log_alert_wired_to_the_action_group(bicep: dict[str, dict[str, Any]]) -> None:
    rule = resources(bicep, "modules/log-alert.bicep")["rule"]["config"]
    assert rule["kind"] == "LogAlert"
    assert rule["properties"]["scopes"] == ["scopeId"]
    assert rule["properties"]["actions"]["actionGroups"] == ["actionGroupId"]
    (criterion,) = rule["properties"]["criteria"]["allOf"]
    assert (criterion["query"], criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == (
        "query",
        "Count",
        "GreaterThan",
        0,
    )

    alerts = bicep["modules/alerts.bicep"]
    group = alerts["resources"]["actionGroup"]["config"]
    assert group["location"] == "global"
    assert len(group["properties"]["groupShortName"]) <= 12
    receivers = group["properties"]["emailReceivers"]
    assert receivers["loop_type"]["detail"]["array_name"] == "emailAddresses"
    assert receivers["config"]["useCommonAlertSchema"] is True

    modules = alerts["modules"]
    assert set(modules) == set(ALERTS)
    for name, (query_file, severity) in ALERTS.items():
        module = modules[name]
        params = module["config"]["params"]
        assert module["detail"]["path"] == "log-alert.bicep", name
        assert ref(params["actionGroupId"]) == "actionGroup.id", name
        assert params["scopeId"] == "appInsightsId", name
        assert loaded_file(params["query"]) == query_file, name
        assert params["severity"] == severity, name
        assert len(params["description"]) > 80, f"{name}: the description must say what to do"
    assert bicep["main.bicep"]["modules"]["alerts"]["config"]["params"]["emailAddresses"] == "alertEmailAddresses"


def test_heartbeat_looks_back_two_days(bicep: dict[str, dict[str, Any]]) -> None:
    params = bicep["modules/alerts.bicep"]["modules"]["heartbeat"]["config"]["params"]
    assert (params["evaluationFrequency"], params["windowSize"], params["overrideQueryTimeRange"]) == (
        "PT1H",
        "PT1H",
        "P2D",
    )
    assert "dimensions" not in params, "a per-tenant split cannot see a tenant that never reported"


def test_watch_heartbeat_looks_back_one_day_without_a_split(bicep: dict[str, dict[str, Any]]) -> None:
    params = bicep["modules/alerts.bicep"]["modules"]["watchHeartbeat"]["config"]["params"]
    assert (params["evaluationFrequency"], params["windowSize"], params["overrideQueryTimeRange"]) == (
        "PT15M",
        "PT15M",
        "P1D",
    )
    assert "dimensions" not in params, "a per-tenant split cannot see a tenant whose watch never reported"


@pytest.mark.parametrize("rule", sorted(WATCH_RULES))
def test_watch_rules_run_often_enough_and_split_as_documented(bicep: dict[str, dict[str, Any]], rule: str) -> None:
    params = bicep["modules/alerts.bicep"]["modules"][rule]["config"]["params"]
    assert (params["evaluationFrequency"], params["windowSize"], params["dimensions"]) == WATCH_RULES[rule]
    assert "overrideQueryTimeRange" not in params


def test_every_alert_has_a_runbook_section_under_its_display_name(bicep: dict[str, dict[str, Any]]) -> None:
    """log-alert.bicep sends `infra/README.md, section "<displayName>"` with every alert: the section must exist."""
    sections = set(re.findall(r"^### (.+?)\s*$", (INFRA / "README.md").read_text(), re.M))
    for name, module in bicep["modules/alerts.bicep"]["modules"].items():
        display = module["config"]["params"]["displayName"]
        assert display in sections, f"{name}: no runbook section '### {display}' in infra/README.md"


def test_the_watch_gets_its_schedule_table_and_the_table_role_on_the_app_storage(
    bicep: dict[str, dict[str, Any]],
) -> None:
    main = bicep["main.bicep"]
    assert main["parameters"]["watchSchedule"]["default"] == "0 */10 * * * *"
    assert main["parameters"]["watchContentTypes"]["default"] == "Audit.Exchange,Audit.AzureActiveDirectory"
    assert main["variables"]["watchTableName"]["value"] == "MailboxAuditWatch"
    params = main["modules"]["functionApp"]["config"]["params"]
    assert (params["watchSchedule"], params["watchTableName"], params["watchContentTypes"]) == (
        "watchSchedule",
        "watchTableName",
        "watchContentTypes",
    )
    # the table lives in the account the host uses (AzureWebJobsStorage__accountName), where the identity holds
    # Storage Table Data Contributor
    assert ref(params["storageAccountName"]) == "storage.outputs.name"
    storage = bicep["modules/storage.bicep"]
    assert "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3" in storage["variables"]["dataRoles"]["value"]
    assert storage["resources"]["dataAccess"]["config"]["config"]["scope"] == "account"
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert given["watchSchedule"]["value"] == "${WATCH_SCHEDULE=0 */10 * * * *}"
    from shared.config.loader import DEFAULT_WATCH_TABLE

    assert main["variables"]["watchTableName"]["value"] == DEFAULT_WATCH_TABLE


def test_every_query_is_loaded_from_an_existing_kql_file_and_every_kql_file_is_used(
    bicep: dict[str, dict[str, Any]],
) -> None:
    loaded = set()
    for file, parsed in bicep.items():
        for key, value in walk([parsed.get(section) for section in ("resources", "modules", "variables")]):
            if key == "query":
                path = loaded_file(value)
                assert path is not None or value == "query", f"{file}: inline query; put it in a .kql file"
                if path:
                    target = ((INFRA / file).parent / path).resolve()
                    assert target.is_file(), f"{file}: {path} does not exist"
                    loaded.add(target)
    kql_files = {p.resolve() for p in INFRA.rglob("*.kql")}
    assert loaded == kql_files, f"unused: {kql_files - loaded}; missing: {loaded - kql_files}"


def test_workbook_shows_controls_over_time_and_last_run_per_tenant(bicep: dict[str, dict[str, Any]]) -> None:
    workbook = bicep["modules/workbook.bicep"]
    properties = workbook["resources"]["workbook"]["config"]["properties"]
    assert properties["serializedData"]["function"]["type"] == "string"
    assert properties["sourceId"] == "appInsightsId"
    queries = {
        item["name"]: item["content"]
        for item in workbook["variables"]["content"]["value"]["items"]
        if item["type"] == 3
    }
    assert loaded_file(queries["control-status-over-time"]["query"]) == "../workbook/control-status-over-time.kql"
    assert queries["control-status-over-time"]["visualization"] == "timechart"
    assert loaded_file(queries["last-run-per-tenant"]["query"]) == "../workbook/last-run-per-tenant.kql"
    assert loaded_file(queries["activity-alerts-per-detection"]["query"]) == (
        "../workbook/activity-alerts-per-detection.kql"
    )
    assert queries["activity-alerts-per-detection"]["visualization"] == "barchart"
    assert loaded_file(queries["activity-feed-lag"]["query"]) == "../workbook/activity-feed-lag.kql"
    assert queries["activity-feed-lag"]["visualization"] == "timechart"
    assert loaded_file(queries["canary-latency"]["query"]) == "../workbook/canary-latency.kql"
    assert queries["canary-latency"]["visualization"] == "timechart"
    assert loaded_file(queries["tenant-control-grid"]["query"]) == "../workbook/tenant-control-grid.kql"


def test_the_fan_out_has_its_queues_its_poison_queues_and_the_tenants_table(bicep: dict[str, dict[str, Any]]) -> None:
    text = (INFRA / "modules/storage.bicep").read_text()
    for queue in ("audit-tenants", "audit-tenants-poison", "watch-tenants", "watch-tenants-poison"):
        assert f"'{queue}'" in text
    assert resources(bicep, "modules/storage.bicep")["tenantsTable"]["config"]["name"] == "tenants"
    scale = resources(bicep, "modules/function-app.bicep")["site"]["config"]["properties"]["functionAppConfig"]
    assert scale["scaleAndConcurrency"]["maximumInstanceCount"] == "maximumInstanceCount"
    assert bicep["main.bicep"]["parameters"]["maximumInstanceCount"]["default"] == 10
    assert bicep["main.bicep"]["parameters"]["multiTenantAppId"]["default"] == ""
