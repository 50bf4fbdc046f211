// The Function App's user-assigned identity: created before the app, so every role it needs can be
// granted before the app's first start (a system-assigned identity exists only after the app does).
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
