// Flex Consumption plan + Python 3.13 Function App with identity-based host storage and telemetry. The app
// settings (siteConfig.appSettings, set with the site so the host never starts without them) are the ones
// docs/telemetry.md lists. On Flex the runtime comes from functionAppConfig: FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION must not be app settings.
param appName string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerUrl string
param appInsightsConnectionString string
param exoTenantId string
param exoOrganization string
param exoCloud string
param auditSchedule string
param auditMode string
param evidenceContainerName string
@description('Entra app registration (client id) for App Service authentication; empty leaves Easy Auth off.')
param remediationClientId string
@description('NCRONTAB of the activity watch timer (activity_watch).')
param watchSchedule string
@description('Table of the watch state in the app storage account (the identity holds Storage Table Data Contributor).')
param watchTableName string
param watchContentTypes string
@description('Client id of the multi-tenant app (federated_identity mode); empty: the managed identity signs in itself.')
param multiTenantAppId string = ''
@description('Most instances the queue fan-out scales to (see main.bicep).')
param maximumInstanceCount int = 10
@description('EXO_PERMISSION_MODEL, AUDIT_CANARY_MAILBOX, AUDIT_CANARY_WRITE, AUDIT_RETENTION_POLICY_CHECK (see main.bicep).')
param permissionModel string = 'entra-role'
param canaryMailbox string = ''
param canaryWrite string = 'custom-attribute'
param retentionPolicyCheck string = 'false'

var federated = !empty(multiTenantAppId)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is not offered for this Flex Consumption plan; one daily check tolerates a zone outage
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: client certificates would break the Entra ID callers of /api/remediate; Easy Auth and function keys guard it
  // checkov:skip=CKV_AZURE_222: the remediation endpoint must be reachable by its callers; access is gated by Entra ID (Easy Auth) and keys
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero; a minimum instance count for failover does not apply to FC1
  // checkov:skip=CKV_AZURE_213: no health-check endpoint: the app exposes only the remediation route, and the heartbeat alert watches the daily run
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
        { name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY', value: 'true' }
        { name: 'PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME', value: 'mailbox_audit_guard' }
        { name: 'EXO_TENANT_ID', value: exoTenantId }
        { name: 'EXO_ORGANIZATION', value: exoOrganization }
        { name: 'EXO_CLOUD', value: exoCloud }
        { name: 'EXO_AUTH_MODE', value: federated ? 'federated_identity' : 'managed_identity' }
        { name: 'EXO_CLIENT_ID', value: federated ? multiTenantAppId : identityClientId }
        { name: 'EXO_MANAGED_IDENTITY_CLIENT_ID', value: identityClientId }
        { name: 'AUDIT_SCHEDULE', value: auditSchedule }
        { name: 'AUDIT_MODE', value: auditMode }
        { name: 'EVIDENCE_CONTAINER', value: evidenceContainerName }
        { name: 'WATCH_SCHEDULE', value: watchSchedule }
        { name: 'WATCH_TABLE_NAME', value: watchTableName }
        { name: 'WATCH_CONTENT_TYPES', value: watchContentTypes }
        { name: 'EXO_PERMISSION_MODEL', value: permissionModel }
        { name: 'AUDIT_CANARY_MAILBOX', value: canaryMailbox }
        { name: 'AUDIT_CANARY_WRITE', value: canaryWrite }
        { name: 'AUDIT_RETENTION_POLICY_CHECK', value: retentionPolicyCheck }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// Publishing with user names and passwords stays off; azd deploys with an Entra ID token.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service authentication (Easy Auth) in front of the HTTP routes: only callers with an Entra ID token for the
// remediation app registration get through, and the platform injects X-MS-CLIENT-PRINCIPAL for the app's role
// check. It gates HTTP only; the timer trigger is started by the host and is not affected. Return401 rather than
// a login redirect: the callers are API clients, not browsers. No client secret: bearer tokens are validated only.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(remediationClientId)) {
  // checkov reads this conditional authsettingsV2 resource as if it were the site's web config (siteConfig), so the
  // web-config checks below do not apply to it: they are false positives, checked on the site itself instead.
  // checkov:skip=CKV_AZURE_13: false positive: this resource IS the App Service authentication
  // checkov:skip=CKV_AZURE_63: false positive (web-config check): HTTP logging is not part of authsettingsV2
  // checkov:skip=CKV_AZURE_65: false positive (web-config check): detailed error pages are not part of authsettingsV2
  // checkov:skip=CKV_AZURE_66: false positive (web-config check): failed request tracing is not part of authsettingsV2
  // checkov:skip=CKV_AZURE_80: false positive (web-config check): no .NET runtime here; the app is Python 3.13
  // checkov:skip=CKV_AZURE_88: false positive (web-config check): Flex Consumption uses blob deployment storage, not Azure Files
  // checkov:skip=CKV_AZURE_222: false positive (web-config check): public network access is a site property, skipped there with its reason
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: remediationClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${remediationClientId}'
            remediationClientId
          ]
        }
      }
    }
  }
}

output name string = site.name
