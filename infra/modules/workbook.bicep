// Azure Monitor workbook: compliance per control over time, latest status per control, last run per tenant, a
// tenant x control status grid (many tenants), and for
// the activity watch the alerts per detection over time and the feed's lag.
// The queries are loaded from infra/workbook/*.kql (validated by the tests like the alert queries).
param location string
param tags object
param displayName string
param appInsightsId string

var timeRange = 'TimeRange'

var content = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'intro'
      content: {
        json: '## Mailbox Audit Guard\nDaily Exchange Online mailbox auditing checks (status values: Compliant, NonCompliant, Error) and the activity watch over the audit feed. Alerts and runbooks: infra/README.md.'
      }
    }
    {
      type: 9
      name: 'parameters'
      content: {
        version: 'KqlParameterItem/1.0'
        style: 'pills'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        parameters: [
          {
            id: '5d6f1c1e-8a8e-4f5b-9a55-0c3b2f6d7e01'
            version: 'KqlParameterItem/1.0'
            name: timeRange
            label: 'Time range'
            type: 4
            isRequired: true
            value: {
              durationMs: 2592000000
            }
            typeSettings: {
              selectableValues: [
                { durationMs: 86400000 }
                { durationMs: 604800000 }
                { durationMs: 2592000000 }
                { durationMs: 7776000000 }
              ]
            }
          }
        ]
      }
    }
    {
      type: 3
      name: 'last-run-per-tenant'
      content: {
        version: 'KqlItem/1.0'
        title: 'Last run per tenant'
        query: loadTextContent('../workbook/last-run-per-tenant.kql')
        size: 0
        timeContextFromParameter: timeRange
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'control-status-over-time'
      content: {
        version: 'KqlItem/1.0'
        title: 'Compliance per control over time (% of runs per day that were Compliant)'
        query: loadTextContent('../workbook/control-status-over-time.kql')
        size: 0
        timeContextFromParameter: timeRange
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'control-latest-status'
      content: {
        version: 'KqlItem/1.0'
        title: 'Latest status per control and tenant'
        query: loadTextContent('../workbook/control-latest-status.kql')
        size: 0
        timeContextFromParameter: timeRange
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'tenant-control-grid'
      content: {
        version: 'KqlItem/1.0'
        title: 'Tenants x controls: the latest status of every control in every tenant of the register'
        query: loadTextContent('../workbook/tenant-control-grid.kql')
        size: 0
        timeContextFromParameter: timeRange
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        gridSettings: {
          formatters: [
            {
              columnMatch: '^(?!tenant_|last_checked).*'
              formatter: 18
              formatOptions: {
                thresholdsOptions: 'icons'
                thresholdsGrid: [
                  { operator: '==', thresholdValue: 'Compliant', representation: 'success', text: '{0}' }
                  { operator: '==', thresholdValue: 'NonCompliant', representation: '2', text: '{0}' }
                  { operator: '==', thresholdValue: 'Error', representation: '4', text: '{0}' }
                  { operator: 'Default', representation: 'Blank', text: '{0}' }
                ]
              }
            }
          ]
        }
      }
    }
    {
      type: 3
      name: 'activity-alerts-per-detection'
      content: {
        version: 'KqlItem/1.0'
        title: 'Activity watch: new alerts per detection and day'
        query: loadTextContent('../workbook/activity-alerts-per-detection.kql')
        size: 0
        timeContextFromParameter: timeRange
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'barchart'
      }
    }
    {
      type: 3
      name: 'activity-feed-lag'
      content: {
        version: 'KqlItem/1.0'
        title: 'Activity watch: feed lag in hours (worst pass per hour; the alert fires above 6)'
        query: loadTextContent('../workbook/activity-feed-lag.kql')
        size: 0
        timeContextFromParameter: timeRange
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'canary-latency'
      content: {
        version: 'KqlItem/1.0'
        title: 'Audit pipeline: canary latency in minutes (write to record seen in the feed)'
        query: loadTextContent('../workbook/canary-latency.kql')
        size: 0
        timeContextFromParameter: timeRange
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
    }
  ]
  fallbackResourceIds: [
    appInsightsId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsId, 'mailbox-audit-guard-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: appInsightsId
    serializedData: string(content)
  }
}

output id string = workbook.id
