// One log search alert on the App Insights component, wired to the action group. Count of result rows > 0.
param name string
param displayName string
param description string
@minValue(0)
@maxValue(4)
param severity int
param location string
param tags object
param scopeId string
param actionGroupId string
param query string
param evaluationFrequency string
param windowSize string
@description('Empty: the rule queries windowSize.')
param overrideQueryTimeRange string = ''
@description('Result columns to split by (one alert per value), e.g. tenant_id.')
param dimensions array = []

resource rule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: name
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: displayName
    description: description
    severity: severity
    enabled: true
    scopes: [
      scopeId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    overrideQueryTimeRange: empty(overrideQueryTimeRange) ? null : overrideQueryTimeRange
    autoMitigate: true
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [for dimension in dimensions: {
            name: dimension
            operator: 'Include'
            values: [
              '*'
            ]
          }]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroupId
      ]
      customProperties: {
        runbook: 'infra/README.md, section "${displayName}"'
      }
    }
  }
}

output id string = rule.id
