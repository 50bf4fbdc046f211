// Azure ML: a workspace whose own storage, key vault and registry are reached by identity only, a
// datastore over the data account's work container (no stored credentials: jobs use the compute's
// identity), and a GPU cluster that scales from zero and has no SSH or local auth.
param workspaceName string
param storageAccountName string
param keyVaultName string
param registryName string
param applicationInsightsId string
param location string
param tags object = {}
param dataAccountName string
param workContainer string
param datastoreName string
param clusterName string
param vmSize string
@minValue(1)
param maxNodes int
param lowPriority bool
@description('CPU cluster of the many-models training runs (forecast_job/): one process per core.')
param cpuClusterName string
param cpuVmSize string
@minValue(1)
param cpuMaxNodes int
@description('Seconds an idle node is kept before the cluster scales down.')
@minValue(60)
param idleSecondsBeforeScaleDown int = 300
@description('GPU nodes kept running when idle: 0 (the default) costs nothing idle, but a job that finds no node waits for one to start (minutes); each warm node bills its full hourly price around the clock.')
@minValue(0)
param gpuMinNodes int = 0
@description('Seconds an idle GPU node is kept before the GPU cluster scales down (back-to-back jobs reuse a warm node and skip its start).')
@minValue(60)
param gpuIdleSecondsBeforeScaleDown int = idleSecondsBeforeScaleDown

// The workspace's system datastores (code snapshots, job logs): Entra ID only, like every account.
module storage 'storage.bicep' = {
  name: 'ml-storage'
  params: {
    name: storageAccountName
    location: location
    tags: tags
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  //checkov:skip=CKV_AZURE_109:Azure ML reaches its vault over the public endpoint unless the whole workspace is network-isolated, which this template does not do; access is RBAC-only
  //checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109
  //checkov:skip=CKV_AZURE_110:No purge protection so that `azd down --purge` can free the name for the same environment; the vault holds no secrets of ours (identity-only datastores)
  //checkov:skip=CKV_AZURE_42:Soft delete is on; this check also demands purge protection, skipped for the reason given for CKV_AZURE_110
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Images of the scoring environment; no admin user: the cluster pulls with its identity.
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: registryName
  location: location
  tags: tags
  //checkov:skip=CKV_AZURE_139:Private registry networking needs the Premium SKU and a network-isolated workspace; pulls and pushes still need an Entra ID token (admin user off)
  //checkov:skip=CKV_AZURE_163:Image vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan outside this template
  //checkov:skip=CKV_AZURE_166:Quarantine needs the Premium SKU; images are built by Azure ML from our own conda file on a Microsoft base image
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2025-06-01' = {
  name: workspaceName
  location: location
  tags: tags
  kind: 'Default'
  //checkov:skip=CKV_AZURE_243:Private endpoints need a VNet design this template leaves to the deployer; the workspace accepts only Entra ID callers with AzureML roles
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    friendlyName: workspaceName
    storageAccount: storage.outputs.id
    keyVault: vault.id
    containerRegistry: registry.id
    applicationInsights: applicationInsightsId
    systemDatastoresAuthMode: 'Identity'
    publicNetworkAccess: 'Enabled'
    v1LegacyMode: false
  }
}

resource datastore 'Microsoft.MachineLearningServices/workspaces/datastores@2025-06-01' = {
  parent: workspace
  name: datastoreName
  properties: {
    datastoreType: 'AzureBlob'
    description: 'Restyle work folders: segments in, styled segments out'
    accountName: dataAccountName
    containerName: workContainer
    endpoint: environment().suffixes.storage
    protocol: 'https'
    credentials: {
      credentialsType: 'None'
    }
    serviceDataAccessAuthIdentity: 'None'
  }
}

resource cluster 'Microsoft.MachineLearningServices/workspaces/computes@2025-06-01' = {
  parent: workspace
  name: clusterName
  location: location
  tags: tags
  // System-assigned: the scoring job's ManagedIdentityConfiguration() (no client id) resolves to it.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    computeType: 'AmlCompute'
    description: 'Restyle scoring: one MPI process per GPU'
    disableLocalAuth: true
    properties: {
      vmSize: vmSize
      vmPriority: lowPriority ? 'LowPriority' : 'Dedicated'
      osType: 'Linux'
      remoteLoginPortPublicAccess: 'Disabled'
      scaleSettings: {
        minNodeCount: gpuMinNodes
        maxNodeCount: maxNodes
        nodeIdleTimeBeforeScaleDown: 'PT${gpuIdleSecondsBeforeScaleDown}S'
      }
    }
  }
}

// Many models: statistical models train on CPUs, dedicated (a run is minutes; pre-emption would cost more
// than it saves). Its identity registers models into the workspace's MLflow registry.
resource cpuCluster 'Microsoft.MachineLearningServices/workspaces/computes@2025-06-01' = {
  parent: workspace
  name: cpuClusterName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    computeType: 'AmlCompute'
    description: 'Restyle many models: one training process per core'
    disableLocalAuth: true
    properties: {
      vmSize: cpuVmSize
      vmPriority: 'Dedicated'
      osType: 'Linux'
      remoteLoginPortPublicAccess: 'Disabled'
      scaleSettings: {
        minNodeCount: 0
        maxNodeCount: cpuMaxNodes
        nodeIdleTimeBeforeScaleDown: 'PT${idleSecondsBeforeScaleDown}S'
      }
    }
  }
}

output workspaceName string = workspace.name
output storageAccountName string = storage.outputs.name
output registryName string = registry.name
output clusterName string = cluster.name
output clusterPrincipalId string = cluster.identity.principalId
output cpuClusterName string = cpuCluster.name
output cpuClusterPrincipalId string = cpuCluster.identity.principalId
output datastoreName string = datastore.name
