// The Function App on Flex Consumption: Python 3.11, scale to zero, deployment package pulled from
// the ops account with the app's user-assigned identity, app settings passed in whole, and App Service
// Authentication with Entra ID in front of the page and the API when an app registration is given.
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
@description('Application (client) ID of the Entra ID app registration people sign in with (docs/deploy.md, Sign-in); empty: no sign-in, only the machine key gets in.')
param authClientId string = ''
@description('Directory (tenant) ID of that app registration.')
param authTenantId string = tenant().tenantId

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
  //checkov:skip=CKV_AZURE_222:The page, the HTTP API and the Event Grid blob webhook are reached over the internet: people sign in with Entra ID, machines send the app's key, Event Grid its system key
  //checkov:skip=CKV_AZURE_17:People sign in with Entra ID and machines send a key; browsers and Event Grid cannot present client certificates
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
    //checkov:skip=CKV_AZURE_13:Web-config check on the appsettings resource; App Service Authentication is the authsettingsV2 resource beside it
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

// App Service Authentication ("Easy Auth", schema: learn.microsoft.com/azure/templates/microsoft.web/
// sites/config-authsettingsv2) with Entra ID. It validates sign-ins and tokens, sets the principal
// headers the app reads (X-MS-CLIENT-PRINCIPAL*) and strips any a client sends. Unauthenticated
// requests pass through (AllowAnonymous) because machines send the app's key and the Event Grid and
// Durable webhooks their system keys, none of them a sign-in; the app answers 401 to every request it
// does not admit (api/callers.py) and sends browsers without a session to /.auth/login/aad. No client
// secret: sign-in then uses the OpenID Connect implicit flow for an ID token, so the registration must
// issue ID tokens (docs/deploy.md). No token store: the app calls nothing on the user's behalf. checkov
// applies its web-server checks to every sites/config resource, this one too.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(authClientId)) {
  //checkov:skip=CKV_AZURE_13:The check reads the v1 authSettings shape; this is authsettingsV2 itself, platform.enabled true with Entra ID
  //checkov:skip=CKV_AZURE_63:Web-config check on the authsettingsV2 resource; requests are logged to Application Insights by the Functions host
  //checkov:skip=CKV_AZURE_65:Web-config check on the authsettingsV2 resource; detailed error pages are an IIS feature, Linux Functions has none
  //checkov:skip=CKV_AZURE_66:Web-config check on the authsettingsV2 resource; failed request tracing is an IIS feature, Linux Functions has none
  //checkov:skip=CKV_AZURE_80:Web-config check on the authsettingsV2 resource; the app is Python, no .NET Framework
  //checkov:skip=CKV_AZURE_88:Web-config check on the authsettingsV2 resource; Flex Consumption has no Azure Files content share
  //checkov:skip=CKV_AZURE_222:Web-config check on the authsettingsV2 resource; public access is justified on the site itself
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
      routes: {
        apiPrefix: '/.auth'
      }
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
          clientId: authClientId
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
      preserveUrlFragmentsForLogins: false
      cookieExpiration: {
        convention: 'FixedTime'
        timeToExpiration: '08:00:00'
      }
      nonce: {
        validateNonce: true
      }
    }
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
output signInEnabled bool = !empty(authClientId)
output defaultHostName string = site.properties.defaultHostName
