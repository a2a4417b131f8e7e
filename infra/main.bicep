// Durable jobs on Azure Functions: `azd up`, or
//   az deployment sub create -l <location> -f infra/main.bicep -p infra/main.parameters.json \
//     -p environmentName=<name> location=<location> principalId=<your object id> principalType=User
// then `func azure functionapp publish <app>` (see README "Deploy").
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the environment; used in resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer the Flex Consumption plan.')
param location string

@description('Object id of the deploying user or principal. When set, it gets data roles on the storage account (for debugging with your own identity). Empty: no roles for it.')
param principalId string = ''

@description('Type of principalId: User (interactive `azd up`) or ServicePrincipal (CI: `azd env set AZURE_PRINCIPAL_TYPE ServicePrincipal`).')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@description('Name of the blob container of the job store (JOBS_CONTAINER).')
param jobsContainerName string = 'jobs'

@description('Shard slots = eternal orchestrators (JOBS_SLOTS).')
@minValue(1)
@maxValue(999)
param jobsSlots int = 4

@description('Flex Consumption: largest number of instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption: memory of one instance.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    containerNames: [deploymentContainerName, jobsContainerName]
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    jobsContainerName: jobsContainerName
    jobsSlots: jobsSlots
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
  // the host starts with identity-based storage: give it its roles first
  dependsOn: [rbac]
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_FUNCTION_APP_URL string = api.outputs.url
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_JOBS_CONTAINER string = jobsContainerName
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
