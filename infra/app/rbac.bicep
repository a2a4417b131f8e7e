// Least-privilege data roles. The app's identity gets exactly what the code and the host use:
// - Storage Blob Data Owner on the account: the host (AzureWebJobsStorage: leases, Durable
//   Functions' blobs), the Flex Consumption deployment container and the job store's container.
//   It covers the job store too (Storage Blob Data Contributor would be enough for `jobs`
//   alone, if the job store got its own account).
// - Storage Queue Data Contributor + Storage Table Data Contributor: Durable Functions' Azure
//   Storage backend (control/work-item queues, History and Instances tables); the queue role
//   also lets the app create and write the state-change event queues (JOBS_EVENTS_QUEUE, notify).
// - Monitoring Metrics Publisher on Application Insights: telemetry with Entra ID auth.
// The deploying user (principalId, optional) gets the same storage data roles for debugging.
param storageAccountName string
param applicationInsightsName string
param appPrincipalId string
@description('Object id of the deploying user or principal; empty: none.')
param userPrincipalId string = ''
@allowed(['User', 'ServicePrincipal'])
param userPrincipalType string = 'User'

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
var storageRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]
var userStorageRoles = empty(userPrincipalId) ? [] : storageRoles

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource appStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageRoles: {
  name: guid(storage.id, appPrincipalId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in userStorageRoles: {
  name: guid(storage.id, userPrincipalId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]
