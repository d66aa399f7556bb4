// Action group (e-mail) and the thirteen log search alerts: six for the daily check and remediation, five for the
// activity watch, two for the many-tenant fan-out (a tenant in the poison queue; a registered tenant gone silent). Each query lives in infra/alerts/<name>.kql and is
// loaded verbatim, so the text the tests validate is the text that gets deployed. Runbooks: infra/README.md.
// Event rules look back twice their frequency so that late-ingested telemetry is still seen; autoMitigate
// keeps one alert open (one e-mail) while rows keep matching, and resolves it afterwards.
param location string
param tags object
param namePrefix string
param appInsightsId string
@description('E-mail addresses that receive every alert.')
param emailAddresses array

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-alerts'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'mbxaudit'
    enabled: true
    emailReceivers: [for (address, i) in emailAddresses: {
      name: 'email-${i + 1}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
  }
}

module nonCompliance 'log-alert.bicep' = {
  name: 'alert-non-compliance'
  params: {
    name: '${namePrefix}-non-compliance'
    displayName: 'Mailbox auditing non-compliant'
    description: 'A run found mailbox auditing settings out of line (failed_controls lists them). Open the workbook or the evidence report, then fix: POST /api/remediate, or `python -m shared remediate`. If a change was made on purpose, record the exception.'
    severity: 1
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/non-compliance.kql')
    evaluationFrequency: 'PT1H'
    windowSize: 'PT2H'
    dimensions: ['tenant_id']
  }
}

module checkFailed 'log-alert.bicep' = {
  name: 'alert-check-failed'
  params: {
    name: '${namePrefix}-check-failed'
    displayName: 'Mailbox audit check failed'
    description: 'A run ended with status Error or raised an exception, so compliance is unknown (fail closed). Look up the run_id in the exceptions table; usual causes are missing Exchange permissions for the identity, throttling or an Exchange outage. Fix the cause and run the check again.'
    severity: 2
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/check-failed.kql')
    evaluationFrequency: 'PT1H'
    windowSize: 'PT2H'
    dimensions: ['tenant_id']
  }
}

module heartbeat 'log-alert.bicep' = {
  name: 'alert-heartbeat'
  params: {
    name: '${namePrefix}-heartbeat'
    displayName: 'No completed mailbox audit check for 25 hours'
    description: 'The daily check has not completed for more than 25 hours (or never since deployment), so nobody is watching mailbox auditing. Check that the function app is running, its last invocations and App Insights ingestion (identity role Monitoring Metrics Publisher), then run the check by hand.'
    severity: 1
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/heartbeat.kql')
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
  }
}

module remediationApplied 'log-alert.bicep' = {
  name: 'alert-remediation-applied'
  params: {
    name: '${namePrefix}-remediation-applied'
    displayName: 'Mailbox audit remediation applied'
    description: 'This tool changed an Exchange Online audit setting (before/after and caller are in the alert). Informational: confirm the change was expected and keep the alert with the change record.'
    severity: 3
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/remediation-applied.kql')
    evaluationFrequency: 'PT1H'
    windowSize: 'PT2H'
    dimensions: ['tenant_id']
  }
}

module remediationFailed 'log-alert.bicep' = {
  name: 'alert-remediation-failed'
  params: {
    name: '${namePrefix}-remediation-failed'
    displayName: 'Mailbox audit remediation failed'
    description: 'A remediation could not be applied or verified (outcome Failed), or is still pending (Unverified: written but not yet read back; Deferred: a dehydrated tenant customisation is propagating, up to 60 min), so the setting is probably still non-compliant. Failed: check the identity has the Exchange Administrator role (grant-permissions without --read-only), look up the run_id in exceptions, then retry or fix by hand. Unverified: run a check in a few minutes. Deferred: remediate again after an hour.'
    severity: 2
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/remediation-failed.kql')
    evaluationFrequency: 'PT1H'
    windowSize: 'PT2H'
    dimensions: ['tenant_id']
  }
}

module revert 'log-alert.bicep' = {
  name: 'alert-revert'
  params: {
    name: '${namePrefix}-revert'
    displayName: 'Mailbox auditing switched off by this tool'
    description: 'Someone ran revert, which disables mailbox auditing (outcome Applied: auditing is OFF now). Verify at once with the caller named in the alert that this was an approved change; if not, run remediate to switch auditing back on and treat it as a security incident.'
    severity: 0
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/revert.kql')
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    dimensions: ['tenant_id']
  }
}

// ---- the activity watch (docs/telemetry.md, "The activity watch") ------------------------------------------------

module activityAlertHigh 'log-alert.bicep' = {
  name: 'alert-activity-high'
  params: {
    name: '${namePrefix}-activity-high'
    displayName: 'High-severity mailbox activity alert'
    description: 'The activity watch found high-risk mailbox activity (detection, actor, mailbox, operation, country and time are in the alert): audit tampering, a permission grant by a new actor, an evasive inbox rule, a mass delete or an export. Confirm with the actor or their manager at once; if it was not them, contain the account and treat it as an incident. A known, approved pattern: add a written detection exception (infra/README.md).'
    severity: 1
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/activity-alert-high.kql')
    evaluationFrequency: 'PT5M'
    windowSize: 'PT10M'
    dimensions: ['tenant_id', 'detection', 'alert_id']
  }
}

module activityAlertMedium 'log-alert.bicep' = {
  name: 'alert-activity-medium'
  params: {
    name: '${namePrefix}-activity-medium'
    displayName: 'Medium-severity mailbox activity alert'
    description: 'The activity watch found unusual mailbox activity (detection, actor, mailbox, operation and country are in the alert): a new SendAs or non-owner pair, a sign-in from a new country, forwarding outside the tenant. Check it with the people involved the same day; a standing delegate, service account or forwarding target gets a written detection exception (infra/README.md).'
    severity: 2
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/activity-alert-medium.kql')
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    dimensions: ['tenant_id', 'detection']
  }
}

module watchFailed 'log-alert.bicep' = {
  name: 'alert-watch-failed'
  params: {
    name: '${namePrefix}-watch-failed'
    displayName: 'Mailbox activity watch failed'
    description: 'A pass of the activity watch ended with status Error or raised an exception, so mailbox activity is not being read (progress before the error is kept). Look up the run_id in the exceptions table; usual causes are a missing ActivityFeed.Read grant (run grant-permissions), the storage table role, throttling or a feed outage.'
    severity: 2
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/watch-failed.kql')
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    dimensions: ['tenant_id']
  }
}

module watchHeartbeat 'log-alert.bicep' = {
  name: 'alert-watch-heartbeat'
  params: {
    name: '${namePrefix}-watch-heartbeat'
    displayName: 'No completed mailbox activity watch for 1 hour'
    description: 'The activity_watch timer has not completed a pass for more than an hour (or never in a day), so nobody is reading the audit feed: tampering would go unseen. Check that the function app runs, the invocations of activity_watch, WATCH_SCHEDULE and App Insights ingestion, then run a pass by hand.'
    severity: 1
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/watch-heartbeat.kql')
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    overrideQueryTimeRange: 'P1D'
  }
}

module feedLag 'log-alert.bicep' = {
  name: 'alert-feed-lag'
  params: {
    name: '${namePrefix}-feed-lag'
    displayName: 'Mailbox activity feed lag above 6 hours'
    description: 'The activity watch has read the audit feed completely only up to more than 6 hours ago (the feed itself runs 60-90 minutes behind). Alerts arrive late, and after 7 days content expires (gaps). Look at failed_blobs and the watch-failed alert, throttling and the Microsoft 365 service health; the first 12 hours after a new subscription are expected to lag.'
    severity: 2
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/feed-lag.kql')
    evaluationFrequency: 'PT30M'
    windowSize: 'PT1H'
    dimensions: ['tenant_id']
  }
}

output actionGroupId string = actionGroup.id

module tenantPoisoned 'log-alert.bicep' = {
  name: 'alert-tenant-poisoned'
  params: {
    name: '${namePrefix}-tenant-poisoned'
    displayName: 'A tenant failed five times and is in the poison queue'
    description: 'The run of one registered tenant ended in Error on all five deliveries of its queue message, which is now in audit-tenants-poison (or watch-tenants-poison). That tenant is not being checked; the others are. Look up run_id in the exceptions and MailboxAuditCheckCompleted, fix the cause (usually consent or roles in that tenant), then move the message back or wait for the next dispatch.'
    severity: 1
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/tenant-poisoned.kql')
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    dimensions: ['tenant_id', 'queue']
  }
}

module tenantHeartbeat 'log-alert.bicep' = {
  name: 'alert-tenant-heartbeat'
  params: {
    name: '${namePrefix}-tenant-heartbeat'
    displayName: 'A registered tenant has no completed check for 25 hours'
    description: 'The dispatcher announced this tenant of the register, but no daily check of it completed in the last 25 hours. Look for its message in audit-tenants (backlog) or audit-tenants-poison, and for its runs (MailboxAuditCheckCompleted with its tenant_id).'
    severity: 1
    location: location
    tags: tags
    scopeId: appInsightsId
    actionGroupId: actionGroup.id
    query: loadTextContent('../alerts/tenant-heartbeat.kql')
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
    dimensions: ['tenant_id']
  }
}
