// Mailbox Audit Guard: everything `azd up` provisions. Subscription scope: creates the resource group, then the
// modules deploy into it. No secrets anywhere: the app reaches storage, App Insights and Exchange Online with its
// user-assigned managed identity. See infra/README.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; part of every resource name.')
param environmentName string

@minLength(1)
@description('Azure region. Must offer the Flex Consumption plan.')
param location string

@minLength(36)
@maxLength(36)
@description('Microsoft 365 tenant (GUID) whose Exchange Online is checked: EXO_TENANT_ID.')
param exoTenantId string

@description('Optional initial domain, e.g. contoso.onmicrosoft.com: EXO_ORGANIZATION.')
param exoOrganization string = ''

@allowed(['global', 'gcchigh', 'dod', 'china'])
@description('Microsoft 365 cloud of the tenant: EXO_CLOUD.')
param exoCloud string = 'global'

@description('NCRONTAB (6 fields, UTC) of the daily check: AUDIT_SCHEDULE.')
param auditSchedule string = '0 0 6 * * *'

@description('NCRONTAB (6 fields, UTC) of the activity watch, a pass over the audit feed: WATCH_SCHEDULE.')
param watchSchedule string = '0 */10 * * * *'

@description('Comma-separated audit feed content types the watch reads: WATCH_CONTENT_TYPES.')
param watchContentTypes string = 'Audit.Exchange,Audit.AzureActiveDirectory'

@allowed(['report', 'remediate'])
@description('report: check only. remediate: the daily run also fixes what is safe unattended: AUDIT_MODE.')
param auditMode string = 'report'

@description('Client id of the Entra app registration that protects POST /api/remediate (App Service authentication). Empty: no Easy Auth.')
param remediationClientId string = ''

@allowed(['entra-role', 'role-group'])
@description('The permission model the identity holds, stated in every evidence report: EXO_PERMISSION_MODEL.')
param permissionModel string = 'entra-role'

@description('The canary mailbox of the audit-pipeline control (empty: that control is not run): AUDIT_CANARY_MAILBOX.')
param canaryMailbox string = ''

@allowed(['custom-attribute', 'audit-property'])
@description('How the canary is written: AUDIT_CANARY_WRITE (audit-property stays inside the Audit Logs role).')
param canaryWrite string = 'custom-attribute'

@allowed(['true', 'false'])
@description('Run the opt-in audit-retention-policy control: AUDIT_RETENTION_POLICY_CHECK.')
param retentionPolicyCheck string = 'false'

@description('E-mail addresses that receive every alert.')
param alertEmailAddresses array = []

@description('Days Log Analytics keeps the telemetry.')
param logRetentionDays int = 90

@description('Many tenants: the client id of the multi-tenant app registration each customer tenant consents to. Set, the app signs in with EXO_AUTH_MODE=federated_identity (the identity is a federated credential of the app: no secret); empty, the managed identity itself (one tenant).')
param multiTenantAppId string = ''

@description('Most instances the queue fan-out may scale to. Each instance runs at most 6 tenants at once (host.json batchSize 4 + newBatchThreshold 2), one run per tenant, so Exchange throttling (per tenant and app) is never shared between runs; raise it with the number of tenants, within the storage account and the plan limits.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 10

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName, application: 'mailbox-audit-guard' }
var evidenceContainerName = 'evidence'
// The activity watch's state (checkpoints, seen ids, baselines, alert ids): a table in the app's storage account.
var watchTableName = 'MailboxAuditWatch'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${resourceToken}'
    evidenceContainerName: evidenceContainerName
    dataPrincipalId: identity.outputs.principalId
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    appName: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    exoTenantId: exoTenantId
    exoOrganization: exoOrganization
    exoCloud: exoCloud
    auditSchedule: auditSchedule
    auditMode: auditMode
    evidenceContainerName: evidenceContainerName
    remediationClientId: remediationClientId
    watchSchedule: watchSchedule
    watchTableName: watchTableName
    watchContentTypes: watchContentTypes
    multiTenantAppId: multiTenantAppId
    maximumInstanceCount: maximumInstanceCount
    permissionModel: permissionModel
    canaryMailbox: canaryMailbox
    canaryWrite: canaryWrite
    retentionPolicyCheck: retentionPolicyCheck
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: 'mag-${environmentName}'
    appInsightsId: monitoring.outputs.appInsightsId
    emailAddresses: alertEmailAddresses
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    displayName: 'Mailbox Audit Guard (${environmentName})'
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
