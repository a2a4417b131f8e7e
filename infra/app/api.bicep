// The Functions app: Flex Consumption (FC1), Python 3.11, user-assigned identity for storage,
// the deployment package and Application Insights. No keys or connection strings with secrets:
// JOBS_STORAGE_CONNECTION_STRING (Azurite only) is deliberately NOT set here.
param name string
param planName string
param location string = resourceGroup().location
param tags object = {}
@description('azd service name (azure.yaml)')
param serviceName string = 'api'
param identityId string
param identityClientId string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param jobsContainerName string = 'jobs'
param jobsSlots int = 4
param applicationInsightsConnectionString string
param maximumInstanceCount int = 100
param instanceMemoryMB int = 2048
@description('Always-ready instances of the durable group (orchestrators and activities): the slots keep cycling without a cold start')
param alwaysReadyDurable int = 1
@description('Always-ready instances of the http group: POST /api/jobs answers without a cold start')
param alwaysReadyHttp int = 1

// Every app setting the code reads (tests/deploy/test_infra.py checks this list
// against the code and local.settings.sample.json). Flex Consumption rejects
// FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION: the runtime is in functionAppConfig.
var appSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // DefaultAzureCredential (the http handler's `audience` tokens) would ask for a
  // system-assigned identity, which this app has not: name the user-assigned one
  AZURE_CLIENT_ID: identityClientId
  JOBS_STORAGE__blobServiceUri: storageBlobEndpoint
  JOBS_STORAGE__clientId: identityClientId
  JOBS_STORAGE__queueServiceUri: storageQueueEndpoint
  JOBS_CONTAINER: jobsContainerName
  JOBS_STORAGE_API_VERSION: ''
  JOBS_TASK_HUB: 'JobsHub'
  JOBS_SLOTS: string(jobsSlots)
  JOBS_BUCKET_MINUTES: '60'
  JOBS_MAX_PAYLOAD_BYTES: '65536'
  JOBS_MAX_RESULT_BYTES: '32768'
  JOBS_HORIZON_DAYS: '365'
  JOBS_MAX_PAST_SECONDS: '86400'
  JOBS_SEAL_BLOCKS: '40000'
  JOBS_EVACUATE_BLOCKS: '45000'
  JOBS_CARRY_AFTER_HOURS: '24.0'
  JOBS_SEAL_BYTES: '16777216'
  JOBS_COMMIT_LINGER_MS: '5.0'
  JOBS_COMMIT_MAX_BYTES: '4194304'
  JOBS_BATCH_SIZE: '200'
  JOBS_MAX_CONCURRENCY: '32'
  JOBS_JOB_TIMEOUT_SECONDS: '60.0'
  JOBS_CLAIM_TTL_SECONDS: '120.0'
  JOBS_ABANDON_GRACE_SECONDS: '30.0'
  JOBS_MAX_SLEEP_SECONDS: '60.0'
  JOBS_RETRY_MAX_ATTEMPTS: '5'
  JOBS_RETRY_BASE_DELAY: '2.0'
  JOBS_RETRY_MAX_DELAY: '300.0'
  JOBS_RETRY_JITTER: '0.2'
  JOBS_MAX_WAIT_SECONDS: '30'
  JOBS_MAX_BATCH: '1000'
  JOBS_MAX_BODY_BYTES: '1048576'
  JOBS_MAX_BATCH_BODY_BYTES: '33554432'
  JOBS_MIN_SLEEP_SECONDS: '1'
  JOBS_ERROR_SLEEP_SECONDS: '5'
  JOBS_CYCLE_DEADLINE_SECONDS: '60'
  JOBS_MIN_CYCLE_SECONDS: '0.5'
  JOBS_KEEPER_SCHEDULE: '0 */5 * * * *'
  JOBS_EVENTS_QUEUE: 'job-events'
  // the queues a job's notify may name (names, or prefixes ending in *); empty: none
  JOBS_NOTIFY_QUEUES: ''
  // the URL bases the built-in http handler may call (comma-separated); empty: none
  JOBS_HTTP_ALLOWED_BASES: ''
  // per-handler limits over the registrations', as JSON; empty: the registrations' own
  JOBS_HANDLER_LIMITS: ''
  // OpenTelemetry export: off, azure_monitor (Application Insights), otlp or console
  JOBS_TELEMETRY: 'off'
  JOBS_RETENTION_DAYS: '7'
  JOBS_PURGE_SCHEDULE: '0 17 3 * * *'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        alwaysReady: [
          { name: 'durable', instanceCount: alwaysReadyDurable }
          { name: 'http', instanceCount: alwaysReadyHttp }
        ]
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }

  resource config 'config' = {
    name: 'appsettings'
    properties: appSettings
  }

  // no basic-auth publishing: azd deploys with an Entra token (to the deployment container);
  // FTP and the SCM site refuse user/password credentials
  resource ftpBasicAuth 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: { allow: false }
  }

  resource scmBasicAuth 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: { allow: false }
  }
}

output name string = functionApp.name
output url string = 'https://${functionApp.properties.defaultHostName}'
