// Azure Monitor for the operator console's figures: a workbook with the console's figures, and
// alert rules that email the operators (an action group whose address is a deployment
// parameter) when dead letters appear, the oldest waiting change gets too old, too many writes
// fail, or Marketo's daily quota is 80 % spent. The app's console_metrics timer sets the gauges
// these read every 5 minutes (shared/console/metrics.py); they land in Application Insights'
// customMetrics table (docs/operations.md has the queries).

param location string = resourceGroup().location
param tags object = {}

param applicationInsightsName string
param serviceBusNamespaceName string
param queueName string

@minLength(3)
@description('Where the alerts are emailed.')
param alertEmail string

@minValue(1)
@description('Alert when the oldest waiting change is older than this, in minutes.')
param oldestBacklogMinutes int = 30

@minValue(1)
@maxValue(100)
@description('Alert when more than this percentage of writes failed in the last hour.')
param failureRatePercent int = 5

@minValue(1)
@maxValue(100)
@description('Alert when mdsync has spent this percentage of the Marketo daily quota.')
param marketoQuotaPercent int = 80

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource operators 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-mdsync-operators'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'mdsync'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actions = {
  actionGroups: [
    operators.id
  ]
}

// Service Bus counts dead letters itself: no dependency on the app for this one.
resource deadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'mdsync-dead-letters'
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages are in the notice queue\'s dead-letter queue: replay them from the console (Errors) or with mdsync replay.'
    severity: 1
    enabled: true
    scopes: [
      serviceBus.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          name: 'DeadLetters'
          criterionType: 'StaticThresholdCriterion'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          timeAggregation: 'Maximum'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                queueName
              ]
            }
          ]
        }
      ]
    }
    actions: [
      {
        actionGroupId: operators.id
      }
    ]
  }
}

var logAlerts = [
  {
    name: 'mdsync-oldest-backlog'
    description: 'The oldest change waiting in the queue is older than ${oldestBacklogMinutes} minutes: is the sync paused, failing or throttled? See the console.'
    severity: 2
    window: 'PT15M'
    frequency: 'PT5M'
    query: 'customMetrics | where name == "mdsync.backlog.oldest_age" | summarize oldest = max(valueMax) by bin(timestamp, 5m)'
    measure: 'oldest'
    threshold: oldestBacklogMinutes * 60
  }
  {
    name: 'mdsync-failure-rate'
    description: 'More than ${failureRatePercent} % of writes failed in the last hour: see the console\'s Errors, grouped by reason.'
    severity: 2
    window: 'PT1H'
    frequency: 'PT15M'
    query: 'customMetrics | where name in ("mdsync.failures", "mdsync.writes") | summarize failures = sumif(valueSum, name == "mdsync.failures"), writes = sumif(valueSum, name == "mdsync.writes") | extend rate = iff(failures + writes < 20, 0.0, 100.0 * failures / (failures + writes))'
    measure: 'rate'
    threshold: failureRatePercent
  }
  {
    name: 'mdsync-marketo-quota'
    description: 'mdsync has spent more than ${marketoQuotaPercent} % of the Marketo daily API quota (it resets at midnight US Central).'
    severity: 2
    window: 'PT15M'
    frequency: 'PT15M'
    query: 'customMetrics | where name == "mdsync.marketo.quota_used" | summarize used = 100.0 * max(valueMax)'
    measure: 'used'
    threshold: marketoQuotaPercent
  }
]

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in logAlerts: {
    name: rule.name
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [
        appInsights.id
      ]
      evaluationFrequency: rule.frequency
      windowSize: rule.window
      autoMitigate: true
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: 'Maximum'
            metricMeasureColumn: rule.measure
            operator: 'GreaterThan'
            threshold: rule.threshold
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: actions
    }
  }
]

// --- the workbook: the console's figures over time -----------------------------------------------

var gauge = 'customMetrics | where name == "{0}" | extend {1} = tostring(customDimensions.{1}) | summarize value = max(valueMax) by bin(timestamp, 5m), {1}'

var charts = [
  {
    title: 'Backlog per lane (waiting, scheduled, held)'
    query: format(gauge, 'mdsync.backlog.queued', 'lane')
    visualization: 'timechart'
  }
  {
    title: 'Age of the oldest waiting change (s), per lane'
    query: format(gauge, 'mdsync.backlog.oldest_age', 'lane')
    visualization: 'timechart'
  }
  {
    title: 'Time to clear the backlog at the current rate (s), per lane'
    query: format(gauge, 'mdsync.backlog.eta', 'lane')
    visualization: 'timechart'
  }
  {
    title: 'Written per hour, by direction'
    query: 'customMetrics | where name == "mdsync.writes" | extend direction = tostring(customDimensions.direction) | summarize writes = sum(valueSum) by bin(timestamp, 1h), direction'
    visualization: 'barchart'
  }
  {
    title: 'Collisions per hour, by winner'
    query: 'customMetrics | where name == "mdsync.collisions" | extend winner = tostring(customDimensions.winner) | summarize collisions = sum(valueSum) by bin(timestamp, 1h), winner'
    visualization: 'barchart'
  }
  {
    title: 'Failures per hour, by reason'
    query: 'customMetrics | where name == "mdsync.failures" | extend reason = tostring(customDimensions.reason) | summarize failures = sum(valueSum) by bin(timestamp, 1h), reason'
    visualization: 'barchart'
  }
  {
    title: 'Given up: parked notices and dead letters'
    query: format(gauge, 'mdsync.given_up', 'kind')
    visualization: 'timechart'
  }
  {
    title: 'Change capture: how far behind (s)'
    query: format(gauge, 'mdsync.capture.behind', 'path')
    visualization: 'timechart'
  }
  {
    title: 'Marketo calls today (mdsync\'s own)'
    query: 'customMetrics | where name == "mdsync.marketo.calls_today" | summarize calls = max(valueMax) by bin(timestamp, 5m)'
    visualization: 'timechart'
  }
  {
    title: 'Marketo daily quota used (%)'
    query: 'customMetrics | where name == "mdsync.marketo.quota_used" | summarize used = 100.0 * max(valueMax) by bin(timestamp, 5m)'
    visualization: 'timechart'
  }
  {
    title: 'Dataverse requests in the 5-minute window'
    query: 'customMetrics | where name == "mdsync.dataverse.requests_in_window" | summarize requests = max(valueMax) by bin(timestamp, 5m)'
    visualization: 'timechart'
  }
  {
    title: 'Paused (1) or running (0)'
    query: 'customMetrics | where name == "mdsync.paused" | summarize paused = max(valueMax) by bin(timestamp, 5m)'
    visualization: 'timechart'
  }
  {
    title: 'End-to-end lag, p95 (s)'
    query: 'customMetrics | where name == "mdsync.sync.lag" | extend direction = tostring(customDimensions.direction) | summarize p95 = percentile(valueMax, 95) by bin(timestamp, 15m), direction'
    visualization: 'timechart'
  }
]

var intro = {
  type: 1
  name: 'intro'
  content: {
    json: '## mdsync\nThe operator console\'s figures over the last day (the console itself, at /api/console, shows them now and lets operators act). The console_metrics function sets the gauges every 5 minutes.'
  }
}

var chartItems = [
  for chart in charts: {
      type: 3
      name: chart.title
      content: {
        version: 'KqlItem/1.0'
        title: chart.title
        query: chart.query
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: chart.visualization
        timeContext: {
          durationMs: 86400000
        }
      }
    }
]

var workbookItems = concat([intro], chartItems)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsightsName, 'mdsync-console-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'mdsync console'
    category: 'workbook'
    sourceId: appInsights.id
    version: '1.0'
    serializedData: string({
      version: 'Notebook/1.0'
      items: workbookItems
      fallbackResourceIds: [
        appInsights.id
      ]
      styleSettings: {}
      timeContext: {
        durationMs: 86400000
      }
    })
  }
}

output actionGroupId string = operators.id
output workbookId string = workbook.id
output alertRules array = [for (rule, i) in logAlerts: rules[i].name]
