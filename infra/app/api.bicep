// The mdsync function app on a Flex Consumption plan: Python 3.11, identity-based connections
// only, secrets as Key Vault references. Tagged azd-service-name=api so `azd deploy` finds it.
// On Flex the runtime, scale and deployment source live in functionAppConfig; the app settings
// that other plans use for them (FUNCTIONS_WORKER_RUNTIME, WEBSITE_RUN_FROM_PACKAGE, ...) are
// deliberately absent.

param name string
param planName string
param location string = resourceGroup().location
param tags object = {}

@description('azd service name; must match services.<name> in azure.yaml.')
param serviceName string = 'api'

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

param storageAccountName string
param deploymentContainerUrl string
param stateTableEndpoint string
param applicationInsightsName string
param serviceBusFullyQualifiedNamespace string
param serviceBusQueueName string
param backfillQueueName string

@minValue(1)
param maxDeliveryCount int

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

// Flex Consumption accepts 40..1000 as the per-app scale-out ceiling.
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

param marketoBaseUrl string
param marketoClientId string
param dataverseUrl string

@allowed([
  'managed_identity'
  'client_secret'
])
param dataverseCredential string = 'managed_identity'
param dataverseTenantId string

@description('The application user\'s client id: the user-assigned identity\'s, or the app registration\'s.')
param dataverseClientId string
param dynamicsSyncUserIds string = ''
param marketoPollSchedule string
param dynamicsSweepSchedule string

@description('NCRONTAB of the console_metrics timer (the figures Azure Monitor charts and alerts on).')
param metricsSchedule string = '0 */5 * * * *'

@minValue(1)
@description('The Marketo instance\'s daily API quota (the console\'s figure and its 80 % alert).')
param marketoDailyQuota int = 50000

@description('Versionless Key Vault secret URIs, resolved by the platform as Key Vault references.')
param marketoClientSecretUri string
param dataverseClientSecretUri string
param dynamicsWebhookSecretUri string
param flowStepSecretUri string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Every setting the app reads (names fixed by shared/config.py, see docs/configuration.md) plus
// the platform settings for identity-based host storage, Service Bus trigger and telemetry.
// These lists are the app's complete set: settings changed elsewhere are replaced on provisioning.
var baseSettings = [
  { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
  { name: 'AZURE_CLIENT_ID', value: identityClientId }
  { name: 'MARKETO_BASE_URL', value: marketoBaseUrl }
  { name: 'MARKETO_CLIENT_ID', value: marketoClientId }
  { name: 'MARKETO_CLIENT_SECRET', value: '@Microsoft.KeyVault(SecretUri=${marketoClientSecretUri})' }
  { name: 'DATAVERSE_URL', value: dataverseUrl }
  { name: 'DATAVERSE_CREDENTIAL', value: dataverseCredential }
  { name: 'DATAVERSE_TENANT_ID', value: dataverseTenantId }
  { name: 'DATAVERSE_CLIENT_ID', value: dataverseClientId }
  { name: 'DYNAMICS_SYNC_USER_IDS', value: dynamicsSyncUserIds }
  { name: 'MDSYNC_QUEUE_BACKEND', value: 'servicebus' }
  { name: 'SERVICEBUS_QUEUE_NAME', value: serviceBusQueueName }
  { name: 'BACKFILL_QUEUE_NAME', value: backfillQueueName }
  { name: 'ServiceBusConnection__fullyQualifiedNamespace', value: serviceBusFullyQualifiedNamespace }
  { name: 'ServiceBusConnection__credential', value: 'managedidentity' }
  { name: 'ServiceBusConnection__clientId', value: identityClientId }
  { name: 'MDSYNC_MAX_DELIVERY_COUNT', value: string(maxDeliveryCount) }
  { name: 'MDSYNC_STATE_BACKEND', value: 'table' }
  { name: 'STATE_TABLE_ENDPOINT', value: stateTableEndpoint }
  { name: 'DYNAMICS_WEBHOOK_SECRET', value: '@Microsoft.KeyVault(SecretUri=${dynamicsWebhookSecretUri})' }
  { name: 'FLOW_STEP_SECRET', value: '@Microsoft.KeyVault(SecretUri=${flowStepSecretUri})' }
  { name: 'MARKETO_POLL_SCHEDULE', value: marketoPollSchedule }
  { name: 'DYNAMICS_SWEEP_SCHEDULE', value: dynamicsSweepSchedule }
  { name: 'MDSYNC_METRICS_SCHEDULE', value: metricsSchedule }
  { name: 'MARKETO_DAILY_QUOTA', value: string(marketoDailyQuota) }
]

// Only an app registration has a Dataverse secret; the managed identity has none to store.
var dataverseSecretSettings = dataverseCredential == 'client_secret' ? [
  { name: 'DATAVERSE_CLIENT_SECRET', value: '@Microsoft.KeyVault(SecretUri=${dataverseClientSecretUri})' }
] : []

var appSettings = concat(baseSettings, dataverseSecretSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    // checkov:skip=CKV_AZURE_225:Zone redundancy on Flex Consumption requires at least two always-ready instances per function group, which ends scale-to-zero billing; opt in per docs/deploying.md.
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_17:Callers are Dataverse and Marketo webhooks, which cannot present client certificates; they authenticate with a function key plus a shared-secret header. See docs/deploying.md.
    // checkov:skip=CKV_AZURE_78:Flex Consumption has no FTP/FTPS endpoint and ARM rejects siteConfig.ftpsState on Flex sites; code arrives only through the identity-authenticated deployment container. See docs/deploying.md.
    // checkov:skip=CKV_AZURE_212:numberOfWorkers does not apply to Flex Consumption; instances come and go with load (functionAppConfig.scaleAndConcurrency). See docs/deploying.md.
    // checkov:skip=CKV_AZURE_213:No instance pool to route around on a scale-to-zero plan, and a probe would keep instances awake; Service Bus redelivery and the sweep cover failed instances. See docs/deploying.md.
    // checkov:skip=CKV_AZURE_222:The webhooks are called by Dataverse and Marketo (SaaS, public internet); the endpoint must be public. See docs/deploying.md.
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      appSettings: appSettings
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
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
