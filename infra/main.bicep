// mdsync infrastructure, deployed by `azd up` (or `az deployment sub create`). Creates one
// resource group tagged azd-env-name and, inside it, the identity, storage, Service Bus, Key
// Vault, monitoring, role assignments and the Flex Consumption function app. Names are derived
// from uniqueString(subscription, environment, location), so the same environment always maps
// to the same resources. docs/deploying.md describes every parameter and output.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region for all resources; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; default rg-<environmentName>.')
param resourceGroupName string = ''

// --- Marketo ------------------------------------------------------------------------------

@minLength(1)
@description('Marketo REST base URL, e.g. https://123-ABC-456.mktorest.com (Admin > Integration > Web Services).')
param marketoBaseUrl string

@minLength(1)
@description('Client id of the Marketo LaunchPoint custom service.')
param marketoClientId string

@secure()
@minLength(1)
@description('Client secret of the Marketo LaunchPoint custom service (stored in Key Vault).')
param marketoClientSecret string

// --- Dataverse ----------------------------------------------------------------------------

@minLength(1)
@description('Dataverse environment URL, e.g. https://contoso.crm.dynamics.com.')
param dataverseUrl string

@allowed([
  'managed_identity'
  'client_secret'
])
@description('How the app signs in to Dataverse: managed_identity (default; the app\'s identity is the Dataverse application user, no secret) or client_secret (an app registration).')
param dataverseCredential string = 'managed_identity'

@description('Entra ID tenant of the Dataverse organization; empty means this subscription\'s tenant.')
param dataverseTenantId string = ''

@description('client_secret only: application (client) id of the app registration bound to the Dataverse application user.')
param dataverseClientId string = ''

@secure()
@description('client_secret only: client secret of that app registration (stored in Key Vault); empty otherwise.')
param dataverseClientSecret string

@description('systemuserid(s) of the Dataverse application user mdsync writes as, comma-separated; lets the app recognise echoes of its own writes early. Optional.')
param dynamicsSyncUserIds string = ''

// --- Inbound shared secrets (at least 16 characters, as the app requires) --------------------

@secure()
@minLength(16)
@description('Shared secret the Dataverse service endpoint sends in the x-mdsync-key header (stored in Key Vault).')
param dynamicsWebhookSecret string

@secure()
@minLength(16)
@description('Shared secret the Marketo flow-step webhook sends in the x-mdsync-key header (stored in Key Vault).')
param flowStepSecret string

@secure()
@minLength(16)
@description('Shared secret the Marketo change campaign\'s webhook sends in the x-mdsync-key header (stored in Key Vault).')
param marketoWebhookSecret string

// --- Behaviour and scale ------------------------------------------------------------------

@minValue(1)
@maxValue(2000)
@description('Deliveries of a notice before Service Bus dead-letters it; also MDSYNC_MAX_DELIVERY_COUNT.')
param maxDeliveryCount int = 10

@description('NCRONTAB (six fields, UTC) of the Marketo poller.')
param marketoPollSchedule string = '0 */1 * * * *'

@description('NCRONTAB (six fields, UTC) of the Dynamics sweep.')
param dynamicsSweepSchedule string = '0 */15 * * * *'

@allowed([512, 2048, 4096])
@description('Memory of each Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
@description('Scale-out ceiling of the function app (Flex Consumption accepts 40 to 1000).')
param maximumInstanceCount int = 40

@description('Object id of the person (or group) operating mdsync: granted the data-plane roles `mdsync log`, `replay` and `doctor` need (azd fills it with the signed-in user). Empty grants nothing.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('Kind of operatorPrincipalId.')
param operatorPrincipalType string = 'User'

// --- Operator console and alerts ---------------------------------------------------------

@minLength(3)
@description('Email address of the operators: Azure Monitor alerts (dead letters, old backlog, failure rate, Marketo quota) are sent there.')
param alertEmail string

@description('Sign-in for the operator console: an Entra ID app registration with the operator app role, and App Service authentication in front of the app (needs the right to register applications; false: the manual steps in docs/operations.md).')
param consoleSignIn bool = true

@description('The app role a user needs for the console.')
param consoleRole string = 'mdsync.operator'

@minValue(1)
@description('Alert when the oldest waiting change is older than this, in minutes.')
param oldestBacklogMinutes int = 30

@minValue(1)
@maxValue(100)
@description('Alert when more than this percentage of writes failed in the last hour.')
param failureRatePercent int = 5

@minValue(1)
@description('The Marketo instance\'s daily API quota (the console and its 80 % alert).')
param marketoDailyQuota int = 50000

@description('State tables created up front: STATE_TABLE_PREFIX (mdsync) + the kinds in shared/adapters/table_state.py TABLES. The sync log\'s day tables (mdsynclog<yyyymmdd>) are created and deleted by the app.')
param stateTableNames array = [
  'mdsynccheckpoints'
  'mdsynclinks'
  'mdsyncshadows'
  'mdsyncleases'
  'mdsyncparked'
  'mdsynctallies'
  'mdsyncerrors'
  'mdsyncaudit'
]

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var queueName = 'mdsync-notices'
var deploymentContainerName = 'app-package'
var names = {
  identity: 'id-mdsync-${resourceToken}'
  logAnalytics: 'log-mdsync-${resourceToken}'
  applicationInsights: 'appi-mdsync-${resourceToken}'
  storage: 'stmdsync${resourceToken}'
  serviceBus: 'sb-mdsync-${resourceToken}'
  keyVault: 'kv-mdsync-${resourceToken}'
  plan: 'plan-mdsync-${resourceToken}'
  functionApp: 'func-mdsync-${resourceToken}'
}

resource rg 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.applicationInsights
    location: location
    tags: tags
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: names.storage
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    tableNames: stateTableNames
  }
}

module serviceBus 'core/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    namespaceName: names.serviceBus
    location: location
    tags: tags
    queueName: queueName
    maxDeliveryCount: maxDeliveryCount
  }
}

module keyVault 'core/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: names.keyVault
    location: location
    tags: tags
    marketoClientSecret: marketoClientSecret
    dataverseClientSecret: dataverseCredential == 'client_secret' ? dataverseClientSecret : ''
    dynamicsWebhookSecret: dynamicsWebhookSecret
    flowStepSecret: flowStepSecret
    marketoWebhookSecret: marketoWebhookSecret
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.namespaceName
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusQueueName: serviceBus.outputs.queueName
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  // Roles first: the app resolves Key Vault references and reads its package at first start.
  dependsOn: [
    rbac
  ]
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    stateTableEndpoint: storage.outputs.tableEndpoint
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    serviceBusQueueName: serviceBus.outputs.queueName
    backfillQueueName: serviceBus.outputs.backfillQueueName
    maxDeliveryCount: maxDeliveryCount
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    marketoBaseUrl: marketoBaseUrl
    marketoClientId: marketoClientId
    dataverseUrl: dataverseUrl
    dataverseCredential: dataverseCredential
    dataverseTenantId: !empty(dataverseTenantId) ? dataverseTenantId : tenant().tenantId
    // With the managed identity, the identity's client id is the application user's.
    dataverseClientId: dataverseCredential == 'managed_identity' ? identity.outputs.clientId : dataverseClientId
    dynamicsSyncUserIds: dynamicsSyncUserIds
    marketoPollSchedule: marketoPollSchedule
    dynamicsSweepSchedule: dynamicsSweepSchedule
    marketoClientSecretUri: keyVault.outputs.marketoClientSecretUri
    dataverseClientSecretUri: keyVault.outputs.dataverseClientSecretUri
    dynamicsWebhookSecretUri: keyVault.outputs.dynamicsWebhookSecretUri
    flowStepSecretUri: keyVault.outputs.flowStepSecretUri
    marketoWebhookSecretUri: keyVault.outputs.marketoWebhookSecretUri
    marketoDailyQuota: marketoDailyQuota
  }
}

module consoleApp 'app/console-app.bicep' = if (consoleSignIn) {
  name: 'console-app'
  scope: rg
  params: {
    siteName: api.outputs.name
    defaultHostName: api.outputs.defaultHostName
    consoleRole: consoleRole
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module consoleAuth 'app/console-auth.bicep' = if (consoleSignIn) {
  name: 'console-auth'
  scope: rg
  params: {
    siteName: api.outputs.name
    clientId: consoleSignIn ? consoleApp.outputs.clientId : ''
  }
}

module alerts 'core/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusNamespaceName: serviceBus.outputs.namespaceName
    queueName: serviceBus.outputs.queueName
    alertEmail: alertEmail
    oldestBacklogMinutes: oldestBacklogMinutes
    failureRatePercent: failureRatePercent
  }
}

// azd stores these in .azure/<env>/.env; none is a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = 'https://${api.outputs.defaultHostName}'
output DYNAMICS_WEBHOOK_URL string = 'https://${api.outputs.defaultHostName}/api/dynamics/webhook'
output AZURE_CLIENT_ID string = identity.outputs.clientId
// Add this id as the Dataverse application user (docs/deploying.md, step 3).
output DATAVERSE_APPLICATION_ID string = dataverseCredential == 'managed_identity' ? identity.outputs.clientId : dataverseClientId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output STATE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output SERVICEBUS_QUEUE_NAME string = serviceBus.outputs.queueName
output BACKFILL_QUEUE_NAME string = serviceBus.outputs.backfillQueueName
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
// The operator console, and the app registration its sign-in uses (empty without consoleSignIn).
output CONSOLE_URL string = 'https://${api.outputs.defaultHostName}/api/console'
output CONSOLE_CLIENT_ID string = consoleSignIn ? consoleApp.outputs.clientId : ''
