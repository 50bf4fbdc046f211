// The Function App on Flex Consumption: Python 3.11, scale to zero, deployment package pulled from
// the ops account with the app's user-assigned identity, app settings passed in whole.
param name string
param planName string
param location string
param tags object = {}
param identityId string
@description('Blob container URL holding the deployment package (ops account).')
param deploymentContainerUrl string
param appSettings object
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40
@description('Subnet (delegated to Microsoft.App/environments) for VNet integration; empty for none.')
param subnetId string = ''

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  //checkov:skip=CKV_AZURE_225:Zone redundancy limits the regions Flex Consumption can run in; the app is a stateless batch front end whose Durable orchestrations resume after an outage
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  //checkov:skip=CKV_AZURE_222:The HTTP API and the Event Grid blob webhook are called over the internet; both need a function or system key
  //checkov:skip=CKV_AZURE_17:Callers authenticate with function keys, and Event Grid cannot present a client certificate to the blob webhook
  //checkov:skip=CKV_AZURE_212:Scale to zero is the point of Flex Consumption here; work survives instance loss in the Durable task hub
  //checkov:skip=CKV_AZURE_213:Flex Consumption manages instance health itself and has no App Service health check setting
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
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
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }

  // checkov applies its web-server checks to every sites/config resource; this one holds only app settings.
  resource settings 'config' = {
    //checkov:skip=CKV_AZURE_13:Web-config check on the appsettings resource; callers use function keys (App Service Authentication would block the Event Grid webhook)
    //checkov:skip=CKV_AZURE_63:Web-config check on the appsettings resource; requests are logged to Application Insights by the Functions host
    //checkov:skip=CKV_AZURE_65:Web-config check on the appsettings resource; detailed error pages are an IIS feature, Linux Functions has none
    //checkov:skip=CKV_AZURE_66:Web-config check on the appsettings resource; failed request tracing is an IIS feature, Linux Functions has none
    //checkov:skip=CKV_AZURE_80:Web-config check on the appsettings resource; the app is Python, no .NET Framework
    //checkov:skip=CKV_AZURE_88:Web-config check on the appsettings resource; Flex Consumption has no Azure Files content share
    //checkov:skip=CKV_AZURE_222:Web-config check on the appsettings resource; public access is justified on the site itself
    name: 'appsettings'
    properties: appSettings
  }
}

// Deployments (azd, func publish) authenticate with Entra ID; basic-auth publishing stays off.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
