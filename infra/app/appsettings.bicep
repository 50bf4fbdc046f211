// Every app setting the Function App gets, in one place. RESTYLE_* are the fields of
// restyle.settings.Settings (fields not listed keep their code defaults; tests/test_infra.py holds
// the list and fails when the two drift apart). The rest are read by the Functions host, its
// blob extension and azure-identity. No keys or connection strings: every identity is Entra ID.
param identityClientId string
param applicationInsightsConnectionString string
param opsAccountName string
param dataBlobEndpoint string
param dataQueueEndpoint string
param containers object
param amlWorkspace string
param amlCompute string
param amlDatastore string
param amlEnvironment string
@description('Nodes per scoring job.')
param amlInstanceCount int
@description('Processes per node: one per GPU.')
param amlProcessesPerInstance int
@description('Many models: the CPU cluster, its environment, nodes per run and processes per node.')
param amlForecastCompute string
param amlForecastEnvironment string
param amlForecastInstanceCount int
param amlForecastProcessesPerInstance int
@description('SHA-256 (hex) of each machine key the HTTP API accepts, comma-separated (docs/deploy.md, Sign-in).')
param apiKeySha256 string
@description('Quotas of each signed-in person: jobs running at once, GPU minutes of scoring per UTC day.')
param maxRunningJobsPerUser int
param gpuMinutesPerUserPerDay int

output settings object = {
  // Host storage (Durable task hub, blob receipts): the ops account with the user-assigned identity.
  AzureWebJobsStorage__accountName: opsAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // Keyless telemetry: Entra ID token of the same identity.
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // DefaultAzureCredential in the code (storage clients, MLClient) picks this identity.
  AZURE_CLIENT_ID: identityClientId
  // The blob trigger's connection (restyle.settings.DATA_CONNECTION): the data account.
  RestyleData__blobServiceUri: dataBlobEndpoint
  RestyleData__queueServiceUri: dataQueueEndpoint
  RestyleData__credential: 'managedidentity'
  RestyleData__clientId: identityClientId
  // restyle.settings.Settings
  RESTYLE_STORAGE_ACCOUNT_URL: dataBlobEndpoint
  RESTYLE_INPUT_CONTAINER: containers.input
  RESTYLE_STYLES_CONTAINER: containers.styles
  RESTYLE_WORK_CONTAINER: containers.work
  RESTYLE_OUTPUT_CONTAINER: containers.output
  RESTYLE_REJECTED_CONTAINER: containers.rejected
  RESTYLE_TABLES_CONTAINER: containers.tables
  RESTYLE_BLOB_TRIGGER_SOURCE: 'EventGrid'
  RESTYLE_COMPUTE_BACKEND: 'azureml'
  RESTYLE_SCORING_WORKERS: string(amlInstanceCount * amlProcessesPerInstance)
  RESTYLE_AML_SUBSCRIPTION_ID: subscription().subscriptionId
  RESTYLE_AML_RESOURCE_GROUP: resourceGroup().name
  RESTYLE_AML_WORKSPACE: amlWorkspace
  RESTYLE_AML_COMPUTE: amlCompute
  RESTYLE_AML_DATASTORE: amlDatastore
  RESTYLE_AML_ENVIRONMENT: amlEnvironment
  RESTYLE_AML_INSTANCE_COUNT: string(amlInstanceCount)
  RESTYLE_AML_PROCESSES_PER_INSTANCE: string(amlProcessesPerInstance)
  RESTYLE_AML_FORECAST_COMPUTE: amlForecastCompute
  RESTYLE_AML_FORECAST_ENVIRONMENT: amlForecastEnvironment
  RESTYLE_AML_FORECAST_INSTANCE_COUNT: string(amlForecastInstanceCount)
  RESTYLE_AML_FORECAST_PROCESSES_PER_INSTANCE: string(amlForecastProcessesPerInstance)
  // Spans, metrics and logs (restyle/telemetry.py) to APPLICATIONINSIGHTS_CONNECTION_STRING, as the identity.
  RESTYLE_TELEMETRY_EXPORTER: 'azure_monitor'
  // Who may call (api/callers.py): a person signed in through App Service Authentication, or the key.
  RESTYLE_AUTH: 'required'
  RESTYLE_API_KEY_SHA256: apiKeySha256
  RESTYLE_MAX_RUNNING_JOBS_PER_USER: string(maxRunningJobsPerUser)
  RESTYLE_GPU_MINUTES_PER_USER_PER_DAY: string(gpuMinutesPerUserPerDay)
}
