// One storage account reachable only with Microsoft Entra ID: no shared keys, no anonymous blobs,
// TLS 1.2, blob and container soft delete. Used for the data, ops and Azure ML accounts alike.
param name string
param location string
param tags object = {}
@description('Blob containers to create.')
param containers array = []
@description('Days a deleted blob or container can still be restored.')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 7
@description('Web origins allowed to PUT and GET single blobs with a SAS (the jobs page); none by default.')
param corsOrigins array = []
@description('Lifecycle rules (the management policy\'s `rules`); none by default.')
param lifecycleRules array = []

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  //checkov:skip=CKV_AZURE_35:Network default stays Allow: users upload from their own machines and the Flex app has no VNet by default; every request still needs an Entra ID token (shared keys are off)
  //checkov:skip=CKV_AZURE_59:Public endpoint kept for the same reason as CKV_AZURE_35; private endpoints are an opt-in network design, not part of this template
  //checkov:skip=CKV_AZURE_206:Locally redundant on purpose: inputs can be re-uploaded and outputs re-rendered; geo-replication would double storage cost for no recovery gain
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    // The jobs page uploads with a one-blob write-only SAS and shows previews with a read-only one
    // (api/valet.py): the browser talks to storage directly, so the page's origin needs CORS.
    cors: {
      corsRules: empty(corsOrigins) ? [] : [
        {
          allowedOrigins: corsOrigins
          allowedMethods: ['GET', 'HEAD', 'PUT', 'OPTIONS']
          allowedHeaders: ['content-type', 'x-ms-blob-type', 'x-ms-meta-*']
          exposedHeaders: ['etag', 'x-ms-request-id']
          maxAgeInSeconds: 3600
        }
      ]
    }
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for container in containers: {
  parent: blobService
  name: container
  properties: {
    publicAccess: 'None'
  }
}]

// Blobs the app marks with an index tag (superseded model versions) are deleted by the platform.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (!empty(lifecycleRules)) {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: lifecycleRules
    }
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
