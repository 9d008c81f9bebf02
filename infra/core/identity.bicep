// The one identity the function app uses for every Azure dependency: the Flex deployment
// container, host storage, Service Bus, the state tables, Key Vault references and telemetry.
// User-assigned so that role assignments exist before the app does (no first-start races).

@description('Name of the user-assigned managed identity.')
param name string

param location string = resourceGroup().location
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
