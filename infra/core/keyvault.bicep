// Key Vault for the secrets mdsync needs (three with the managed identity, four with a Dataverse
// client secret). RBAC authorization (no access policies), soft
// delete and purge protection. The app never reads the vault itself: its app settings are Key
// Vault references that the platform resolves with the app's managed identity.

param name string
param location string = resourceGroup().location
param tags object = {}

@secure()
@description('Client secret of the Marketo LaunchPoint custom service.')
param marketoClientSecret string

@secure()
@description('Client secret of the Entra ID app registration bound to the Dataverse application user; empty with the managed identity (no secret is stored).')
param dataverseClientSecret string

@secure()
@description('Shared secret the Dataverse service endpoint sends in the DYNAMICS_WEBHOOK_HEADER header.')
param dynamicsWebhookSecret string

@secure()
@description('Shared secret the Marketo "Call Webhook" flow step sends in the FLOW_STEP_HEADER header.')
param flowStepSecret string

@secure()
@description('Shared secret the Marketo change campaign\'s "Call Webhook" sends in the MARKETO_WEBHOOK_HEADER header.')
param marketoWebhookSecret string

// Secret names, also used by the versionless URIs in the outputs.
var secretNames = {
  marketo: 'marketo-client-secret'
  dataverse: 'dataverse-client-secret'
  dynamicsWebhook: 'dynamics-webhook-secret'
  flowStep: 'flow-step-secret'
  campaignWebhook: 'marketo-webhook-secret'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109:Flex Consumption cannot resolve Key Vault references against a network-restricted vault, even with VNet integration. See docs/deploying.md.
    // checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: public network access must stay enabled; access is Entra ID RBAC only. See docs/deploying.md.
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// One resource per secret (no loop) so each can carry its own checkov skip and description.
resource marketoSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretNames.marketo
  properties: {
    // checkov:skip=CKV_AZURE_41:Credentials issued by Marketo and Entra ID carry their own lifetime; an expiry here would stop the app without rotating anything. Rotation is documented in docs/deploying.md.
    value: marketoClientSecret
    contentType: 'text/plain'
  }
}

resource dataverseSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(dataverseClientSecret)) {
  parent: vault
  name: secretNames.dataverse
  properties: {
    // checkov:skip=CKV_AZURE_41:Same reason as marketo-client-secret; the Entra ID client secret has its own expiry. See docs/deploying.md.
    // checkov:skip=CKV_AZURE_114:contentType is set below; checkov 3.3.30 does not read the properties of a conditional (if) resource. See docs/deploying.md.
    value: dataverseClientSecret
    contentType: 'text/plain'
  }
}

resource webhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretNames.dynamicsWebhook
  properties: {
    // checkov:skip=CKV_AZURE_41:Shared secret also stored on the Dataverse service endpoint; rotated by hand on both sides together. See docs/deploying.md.
    value: dynamicsWebhookSecret
    contentType: 'text/plain'
  }
}

resource flowStepSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretNames.flowStep
  properties: {
    // checkov:skip=CKV_AZURE_41:Shared secret also stored in the Marketo webhook header; rotated by hand on both sides together. See docs/deploying.md.
    value: flowStepSecret
    contentType: 'text/plain'
  }
}

resource marketoWebhookSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretNames.campaignWebhook
  properties: {
    // checkov:skip=CKV_AZURE_41:Shared secret also stored in the Marketo webhook header; rotated by hand on both sides together. See docs/deploying.md.
    value: marketoWebhookSecret
    contentType: 'text/plain'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
// Versionless URIs: the platform follows the latest version of each secret.
output marketoClientSecretUri string = '${vault.properties.vaultUri}secrets/${secretNames.marketo}/'
output dataverseClientSecretUri string = '${vault.properties.vaultUri}secrets/${secretNames.dataverse}/'
output dynamicsWebhookSecretUri string = '${vault.properties.vaultUri}secrets/${secretNames.dynamicsWebhook}/'
output flowStepSecretUri string = '${vault.properties.vaultUri}secrets/${secretNames.flowStep}/'
output marketoWebhookSecretUri string = '${vault.properties.vaultUri}secrets/${secretNames.campaignWebhook}/'
