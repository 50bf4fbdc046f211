// Who may do what, in one file. Least privilege: data-plane roles on single accounts (or single
// containers for people), never Owner/Contributor.
//   Function App identity: blobs + blob-trigger poison queue on data; host storage (blobs, queues,
//     tables for the Durable task hub) on ops; code snapshot upload to the ML workspace storage;
//     job submission on the workspace; telemetry to Application Insights.
//   GPU cluster identity: segments in / styled segments out on data; code snapshot and logs in the
//     workspace storage; image pull from the registry. Nothing on ops.
//   CPU cluster identity (many models): the upload in, buckets, models and results out on data; code
//     and logs in the workspace storage; image pull; model registration in the workspace.
//   Forecast endpoint identity: production maps and model bundles read on data; the code snapshot
//     read in the workspace storage; image pull. Nothing written anywhere.
//   The deploying person (optional): upload to input/styles, read output/rejected. Nothing else.
param appPrincipalId string
param clusterPrincipalId string
param cpuClusterPrincipalId string
param endpointPrincipalId string
@description('Object id of a person or group to grant the user data roles to; empty for none.')
param userPrincipalId string = ''
@allowed(['User', 'Group', 'ServicePrincipal'])
param userPrincipalType string = 'User'
param dataAccountName string
param opsAccountName string
param mlAccountName string
param applicationInsightsName string
param workspaceName string
param registryName string
@description('Data container names: input, styles, work, output, rejected.')
param containers object

// Built-in role definition ids (the same in every tenant).
var role = {
  blobOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  blobContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
  blobReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // Storage Blob Data Reader
  queueContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  tableContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
  metricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
  mlDataScientist: 'f6c7c914-8db3-469d-8ca1-694a8f32e121' // AzureML Data Scientist
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d' // AcrPull
}

var dataGrants = [
  { principalId: appPrincipalId, roleId: role.blobContributor }
  // The Event Grid-source blob trigger reads the blob and writes its poison queue here; its event queue and
  // receipts are on the host (ops) account. Blob Data Owner (listed generically in the Functions docs) adds
  // only ACL/ownership rights of HNS accounts: not needed (tests/test_infra.py says why, with sources).
  { principalId: appPrincipalId, roleId: role.queueContributor } // the blob trigger's poison queue
  { principalId: clusterPrincipalId, roleId: role.blobContributor }
  { principalId: cpuClusterPrincipalId, roleId: role.blobContributor }
  { principalId: endpointPrincipalId, roleId: role.blobReader }
]
var opsGrants = [
  { principalId: appPrincipalId, roleId: role.blobOwner }
  { principalId: appPrincipalId, roleId: role.queueContributor }
  { principalId: appPrincipalId, roleId: role.tableContributor }
]
var mlStorageGrants = [
  { principalId: appPrincipalId, roleId: role.blobContributor }
  { principalId: clusterPrincipalId, roleId: role.blobContributor }
  { principalId: cpuClusterPrincipalId, roleId: role.blobContributor }
  { principalId: endpointPrincipalId, roleId: role.blobReader }
]
var userGrants = empty(userPrincipalId) ? [] : [
  { container: containers.input, roleId: role.blobContributor }
  { container: containers.styles, roleId: role.blobContributor }
  { container: containers.output, roleId: role.blobReader }
  { container: containers.rejected, roleId: role.blobReader }
  { container: containers.tables, roleId: role.blobContributor }
]

resource dataAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataAccountName
}

resource opsAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: opsAccountName
}

resource mlAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: mlAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2025-06-01' existing = {
  name: workspaceName
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource userContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [for grant in userGrants: {
  name: '${dataAccountName}/default/${grant.container}'
}]

resource dataRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in dataGrants: {
  name: guid(dataAccount.id, grant.principalId, grant.roleId)
  scope: dataAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.roleId)
    principalId: grant.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource opsRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in opsGrants: {
  name: guid(opsAccount.id, grant.principalId, grant.roleId)
  scope: opsAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.roleId)
    principalId: grant.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource mlStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in mlStorageGrants: {
  name: guid(mlAccount.id, grant.principalId, grant.roleId)
  scope: mlAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.roleId)
    principalId: grant.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, role.metricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.metricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Submit, watch and cancel jobs on the existing cluster; cannot create compute or change the workspace.
resource workspaceRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, appPrincipalId, role.mlDataScientist)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.mlDataScientist)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource registryRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in [clusterPrincipalId, cpuClusterPrincipalId, endpointPrincipalId]: {
  name: guid(registry.id, principalId, role.acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.acrPull)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// The many-models publish step registers model versions (custom_model assets) in the workspace as the
// CPU cluster's identity.
resource cpuClusterWorkspaceRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, cpuClusterPrincipalId, role.mlDataScientist)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.mlDataScientist)
    principalId: cpuClusterPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (grant, i) in userGrants: {
  name: guid(userContainers[i].id, userPrincipalId, grant.roleId)
  scope: userContainers[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.roleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]
