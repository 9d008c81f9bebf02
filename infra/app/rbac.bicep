// Data-plane roles for the app's user-assigned identity, each scoped to the one resource it
// needs. Names are deterministic (guid of scope, principal and role), so re-provisioning is a
// no-op. Built-in role ids: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles

@description('Principal (object) id of the user-assigned identity.')
param principalId string

param storageAccountName string
param serviceBusNamespaceName string
param keyVaultName string
param applicationInsightsName string

@description('The notice queue: the console reads its message counts (Manage right).')
param serviceBusQueueName string

@description('Object id of the person or group operating mdsync (`mdsync log`, `replay`, `doctor` from their machine); empty grants nothing.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

var roles = {
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
}

// Blob: host keys, timer locks and the deployment package. Table: the state store.
// Queue: host storage features that use queues.
var storageRoles = [
  roles.storageBlobDataOwner
  roles.storageTableDataContributor
  roles.storageQueueDataContributor
]

// Sender: webhooks, poller and delayed retries enqueue. Receiver: the Service Bus trigger.
var serviceBusRoles = [
  roles.serviceBusDataSender
  roles.serviceBusDataReceiver
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storageAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in storageRoles: {
    name: guid(storage.id, principalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource serviceBusAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in serviceBusRoles: {
    name: guid(serviceBus.id, principalId, roleId)
    scope: serviceBus
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: serviceBus
  name: serviceBusQueueName
}

// The console's backlog: Service Bus gives a queue's message counts (active, scheduled,
// dead-lettered) only to the Manage right, i.e. Data Owner, granted on this one queue.
resource queueOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, principalId, roles.serviceBusDataOwner)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault references are resolved by the platform with this identity (keyVaultReferenceIdentity).
resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Needed because the component has local (key) authentication disabled.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The operator's data-plane roles, so the commands run with their own sign-in (az login):
// Table Data Contributor for the sync log, parked notices and the state checks; Service Bus
// Sender and Receiver to read dead letters and queue them again.
var operatorStorageRoles = !empty(operatorPrincipalId) ? [
  roles.storageTableDataContributor
] : []

var operatorServiceBusRoles = !empty(operatorPrincipalId) ? [
  roles.serviceBusDataSender
  roles.serviceBusDataReceiver
] : []

resource operatorStorageAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in operatorStorageRoles: {
    name: guid(storage.id, operatorPrincipalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: operatorPrincipalId
      principalType: operatorPrincipalType
    }
  }
]

resource operatorServiceBusAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in operatorServiceBusRoles: {
    name: guid(serviceBus.id, operatorPrincipalId, roleId)
    scope: serviceBus
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: operatorPrincipalId
      principalType: operatorPrincipalType
    }
  }
]

// `mdsync status` run by the operator reads the queue's counts as the console does: the Manage
// right (Data Owner), on this one queue.
resource operatorQueueOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(queue.id, operatorPrincipalId, roles.serviceBusDataOwner)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}
