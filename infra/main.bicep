// Restyle on Azure (azd): Flex Consumption Function App + data/ops storage + Azure ML GPU cluster,
// every connection by managed identity. Parameters come from main.parameters.json (azd env values).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region for all resources (Flex Consumption and the GPU VM size must both exist there).')
param location string

@description('Object id of the person running azd (AZURE_PRINCIPAL_ID): may upload to input/styles and read output/rejected. Empty for nobody.')
param principalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
param principalType string = 'User'

@description('GPU VM size of the scoring cluster.')
param gpuVmSize string = 'Standard_NC4as_T4_v3'

@description('GPUs per node of gpuVmSize: one scoring process runs per GPU.')
@minValue(1)
param gpusPerNode int = 1

@description('Most nodes the cluster scales to.')
@minValue(1)
param gpuMaxNodes int = 2

@description('GPU nodes kept warm when idle. 0 (default): idle costs nothing, but a job that finds no node waits for one to start (several minutes, the largest part of a short job\'s wait). Each warm node bills its hourly price around the clock. See docs/performance.md.')
@minValue(0)
param gpuMinNodes int = 0

@description('Seconds an idle GPU node stays before scale-down: jobs arriving within it skip the node start; the node bills meanwhile.')
@minValue(60)
param gpuIdleSeconds int = 300

@description('Nodes one scoring job runs on (at most gpuMaxNodes).')
@minValue(1)
param nodesPerJob int = 1

@description('Low-priority nodes: much cheaper, may be pre-empted (the job then resumes).')
param gpuLowPriority bool = true

@description('Name of the Azure ML datastore over the data account\'s work container.')
param amlDatastoreName string = 'work'
@description('VM size of the many-models CPU cluster (statistical models: no GPU).')
param cpuVmSize string = 'Standard_D4as_v5'
@description('Cores per node of cpuVmSize: one training process each.')
@minValue(1)
param cpuCoresPerNode int = 4
@description('Most CPU nodes; one many-models run spreads over all of them.')
@minValue(1)
param cpuMaxNodes int = 2

@description('Days a model version no production map uses is kept (for a rollback) before the platform deletes it.')
@minValue(1)
param supersededModelDays int = 30

@description('Memory per Function App instance (MB).')
@allowed([512, 2048, 4096])
param functionInstanceMemoryMB int = 2048

@description('Most Function App instances at once.')
@minValue(1)
@maxValue(1000)
param functionMaximumInstanceCount int = 40

@description('Integrate the Function App into a VNet (outbound traffic through vnetSubnetId).')
param vnetIntegration bool = false

@description('Resource id of a subnet delegated to Microsoft.App/environments; used when vnetIntegration is true.')
param vnetSubnetId string = ''

@description('Application (client) ID of the Entra ID app registration people sign in with (AUTH_CLIENT_ID; docs/deploy.md, Sign-in). Empty: no sign-in, only the machine key gets in.')
param authClientId string = ''

@description('SHA-256 (hex) of each machine key the HTTP API accepts, comma-separated (API_KEY_SHA256). Empty: no key is accepted.')
param apiKeySha256 string = ''

@description('Jobs each signed-in person may have running at once (upload tickets not used yet count).')
@minValue(1)
param maxRunningJobsPerUser int = 2

@description('GPU minutes of scoring each signed-in person may use per UTC day.')
@minValue(1)
param gpuMinutesPerUserPerDay int = 120

var token = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
// Data containers; the same names go into the RESTYLE_*_CONTAINER app settings.
var containers = {
  input: 'input'
  styles: 'styles'
  work: 'work'
  output: 'output'
  rejected: 'rejected'
  tables: 'tables'
}
var deploymentContainer = 'app-package'
// Registered by infra/hooks/register-environment.sh from scoring_job/environment.py (NAME).
var amlEnvironment = 'restyle-scoring@latest'
var amlClusterName = 'gpu-cluster'
// Many models: registered from forecast_job/environment.py (NAME); trained on this CPU cluster.
var amlForecastEnvironment = 'restyle-forecast@latest'
var amlCpuClusterName = 'cpu-cluster'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-func-${token}'
    location: location
    tags: tags
  }
}

// The many-models online endpoint's identity (forecast_job/aml_deployment.py): reads production maps
// and model bundles on the data account, the image and the code snapshot on the workspace's side.
module endpointIdentity 'app/identity.bicep' = {
  name: 'endpoint-identity'
  scope: rg
  params: {
    name: 'id-forecast-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${token}'
    applicationInsightsName: 'appi-${token}'
    location: location
    tags: tags
  }
}

// What users upload and get back.
// A workbook over the app's spans and metrics (restyle/telemetry.py): jobs by status, failure
// reasons, throughput, GPU minutes per video.
module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    location: location
    tags: tags
  }
}

module dataStorage 'app/storage.bicep' = {
  name: 'data-storage'
  scope: rg
  params: {
    name: 'stdata${token}'
    location: location
    tags: tags
    containers: [containers.input, containers.styles, containers.work, containers.output, containers.rejected,
      containers.tables]
    // The jobs page (GET /api/page on the Function App, module functionApp below) uploads here.
    corsOrigins: ['https://func-${token}.azurewebsites.net']
    // Many models: a run's model bundles that no production map points at any more are tagged by the
    // app (activities/many_models/results.py); kept supersededModelDays for a rollback, then deleted.
    lifecycleRules: [
      {
        name: 'superseded-model-versions'
        enabled: true
        type: 'Lifecycle'
        definition: {
          filters: {
            blobTypes: ['blockBlob']
            prefixMatch: ['${containers.work}/models/']
            blobIndexMatch: [
              {
                name: 'restyle-superseded'
                op: '=='
                value: 'true'
              }
            ]
          }
          actions: {
            baseBlob: {
              delete: {
                daysAfterModificationGreaterThan: supersededModelDays
              }
            }
          }
        }
      }
    ]
  }
}

// Functions host storage and deployment packages: no user ever gets a role here.
module opsStorage 'app/storage.bicep' = {
  name: 'ops-storage'
  scope: rg
  params: {
    name: 'stops${token}'
    location: location
    tags: tags
    containers: [deploymentContainer]
  }
}

module ml 'app/ml.bicep' = {
  name: 'ml'
  scope: rg
  params: {
    workspaceName: 'mlw-${token}'
    storageAccountName: 'stml${token}'
    keyVaultName: 'kv-${token}'
    registryName: 'cr${token}'
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    location: location
    tags: tags
    dataAccountName: dataStorage.outputs.name
    workContainer: containers.work
    datastoreName: amlDatastoreName
    clusterName: amlClusterName
    vmSize: gpuVmSize
    maxNodes: gpuMaxNodes
    gpuMinNodes: gpuMinNodes
    gpuIdleSecondsBeforeScaleDown: gpuIdleSeconds
    lowPriority: gpuLowPriority
    cpuClusterName: amlCpuClusterName
    cpuVmSize: cpuVmSize
    cpuMaxNodes: cpuMaxNodes
  }
}

module events 'app/eventgrid.bicep' = {
  name: 'events'
  scope: rg
  params: {
    name: 'evgt-data-${token}'
    location: location
    tags: tags
    storageAccountId: dataStorage.outputs.id
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    clusterPrincipalId: ml.outputs.clusterPrincipalId
    cpuClusterPrincipalId: ml.outputs.cpuClusterPrincipalId
    endpointPrincipalId: endpointIdentity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    dataAccountName: dataStorage.outputs.name
    opsAccountName: opsStorage.outputs.name
    mlAccountName: ml.outputs.storageAccountName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    workspaceName: ml.outputs.workspaceName
    registryName: ml.outputs.registryName
    containers: containers
  }
}

module appSettings 'app/appsettings.bicep' = {
  name: 'appsettings'
  scope: rg
  params: {
    identityClientId: identity.outputs.clientId
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    opsAccountName: opsStorage.outputs.name
    dataBlobEndpoint: dataStorage.outputs.blobEndpoint
    dataQueueEndpoint: dataStorage.outputs.queueEndpoint
    containers: containers
    amlWorkspace: ml.outputs.workspaceName
    amlCompute: ml.outputs.clusterName
    amlDatastore: ml.outputs.datastoreName
    amlEnvironment: amlEnvironment
    amlInstanceCount: min(nodesPerJob, gpuMaxNodes)
    amlProcessesPerInstance: gpusPerNode
    amlForecastCompute: ml.outputs.cpuClusterName
    amlForecastEnvironment: amlForecastEnvironment
    amlForecastInstanceCount: cpuMaxNodes
    amlForecastProcessesPerInstance: cpuCoresPerNode
    apiKeySha256: apiKeySha256
    maxRunningJobsPerUser: maxRunningJobsPerUser
    gpuMinutesPerUserPerDay: gpuMinutesPerUserPerDay
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  // Roles first: the host reads its package and storage with them on its very first start.
  dependsOn: [rbac]
  params: {
    name: 'func-${token}'
    planName: 'plan-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploymentContainerUrl: '${opsStorage.outputs.blobEndpoint}${deploymentContainer}'
    appSettings: appSettings.outputs.settings
    instanceMemoryMB: functionInstanceMemoryMB
    maximumInstanceCount: functionMaximumInstanceCount
    subnetId: vnetIntegration ? vnetSubnetId : ''
    authClientId: authClientId
  }
}

// azd stores these in the environment; the hooks in infra/hooks read them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = functionApp.outputs.defaultHostName
output SIGN_IN_ENABLED bool = functionApp.outputs.signInEnabled
output DATA_STORAGE_ACCOUNT_NAME string = dataStorage.outputs.name
output DATA_INPUT_CONTAINER string = containers.input
output DATA_OUTPUT_CONTAINER string = containers.output
output DATA_TABLES_CONTAINER string = containers.tables
output DATA_SYSTEM_TOPIC_NAME string = events.outputs.name
output AML_WORKSPACE_NAME string = ml.outputs.workspaceName
output AML_ENVIRONMENT string = amlEnvironment
output AML_FORECAST_ENVIRONMENT string = amlForecastEnvironment
// For `python -m forecast_job.aml_deployment` (the many-models online endpoint, an opt-in).
output FORECAST_ENDPOINT_IDENTITY_ID string = endpointIdentity.outputs.id
output FORECAST_ENDPOINT_IDENTITY_CLIENT_ID string = endpointIdentity.outputs.clientId
output DATA_BLOB_ENDPOINT string = dataStorage.outputs.blobEndpoint
