// The notice queue. Duplicate detection drops a notice whose MessageId (the notice's dedup id)
// was already sent inside the window, so webhook retries and poller overlaps cost nothing.
// Poison notices move to the dead-letter sub-queue after maxDeliveryCount deliveries, where
// `mdsync replay` can pick them up. No sessions: the worker reconciles, so order does not matter.

param namespaceName string
param location string = resourceGroup().location
param tags object = {}

@description('Queue name; the app reads it from SERVICEBUS_QUEUE_NAME.')
param queueName string = 'mdsync-notices'

@description('The initial sync\'s queue (mdsync backfill in the app); the app reads it from BACKFILL_QUEUE_NAME.')
param backfillQueueName string = 'mdsync-backfill'

@description('Deliveries before dead-lettering; the app reads the same value from MDSYNC_MAX_DELIVERY_COUNT.')
@minValue(1)
@maxValue(2000)
param maxDeliveryCount int = 10

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    // Entra ID only: no SAS keys exist to leak; the app uses its managed identity.
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: queueName
  properties: {
    // Set at creation only: changing it later means deleting and recreating the queue.
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
    maxDeliveryCount: maxDeliveryCount
    // The maximum; a batch of reconciles may call both APIs several times under one lock.
    lockDuration: 'PT5M'
    requiresSession: false
    enablePartitioning: false
    enableBatchedOperations: true
    maxSizeInMegabytes: 1024
  }
}

// The backfill's steps: one message per step of the job, named <job>-<step> so duplicate detection
// drops a second message for the same step; a step works well inside the lock (MDSYNC_BACKFILL_STEP_SECONDS).
resource backfillQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: backfillQueueName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
    maxDeliveryCount: maxDeliveryCount
    lockDuration: 'PT5M'
    requiresSession: false
    enablePartitioning: false
    enableBatchedOperations: true
    maxSizeInMegabytes: 1024
  }
}

output namespaceName string = namespace.name
output namespaceId string = namespace.id
// serviceBusEndpoint is 'https://<ns>.servicebus.windows.net:443/' (or the sovereign-cloud suffix).
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
output queueName string = queue.name
output backfillQueueName string = backfillQueue.name
