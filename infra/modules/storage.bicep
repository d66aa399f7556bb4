// Host storage for the function app: no shared keys, TLS 1.2, https only, no public blobs. The app's identity
// gets data-plane roles (blob for deployment, timer leases and evidence; queue for the host; table for the host and
// the activity watch's state, the WATCH_TABLE_NAME table, which the app creates on first use).
param name string
param location string
param tags object
param deploymentContainerName string
param evidenceContainerName string
param dataPrincipalId string

var dataRoles = [
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor (host, and the watch state table)
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: default network action Allow; Flex Consumption without VNet integration reaches its storage over the public endpoint (identity-only, no keys)
  // checkov:skip=CKV_AZURE_59: public network access stays on for the same reason; shared keys are disabled, so only Entra ID principals with a data role get in
  // checkov:skip=CKV_AZURE_206: locally redundant storage is enough; the evidence of record is the telemetry in Log Analytics and the reports can be regenerated
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Children are declared top-level (with parent): pycep-parser, and so checkov, keeps only the last nested child.
resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource evidenceContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: evidenceContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The many-tenant fan-out (shared/runtime/fanout.py): its queues and their poison queues, and the tenants register.
var fanoutQueues = [
  'audit-tenants'
  'audit-tenants-poison'
  'watch-tenants'
  'watch-tenants-poison'
]

resource queues 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource fanoutQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in fanoutQueues: {
  parent: queues
  name: queue
}]

resource tables 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tenantsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tables
  name: 'tenants'
}

resource dataAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in dataRoles: {
  name: guid(account.id, dataPrincipalId, role)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: dataPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

output name string = account.name
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
