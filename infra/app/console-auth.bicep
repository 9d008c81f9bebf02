// App Service authentication ("Easy Auth") in front of the function app, for the operator
// console (docs/operations.md): Entra ID sign-in with the app registration of console-app.bicep;
// every path needs a signed-in user except the webhook routes, which Dataverse and Marketo call
// with their keys and cannot get Entra tokens for (excludedPaths; they must equal
// shared/console/auth.py WEBHOOK_PATHS, tests/infra checks). The console itself then checks the
// operator app role (shared/console/auth.py).

@description('Name of the function app.')
param siteName string

@description('Application (client) id of the console\'s app registration.')
param clientId string

@description('Paths App Service authentication lets through unauthenticated: the webhook routes, and the initial sync\'s admin call (master key).')
param webhookPaths array = [
  '/api/dynamics/webhook'
  '/api/marketo/sync-person'
  '/api/backfill'
]

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    // checkov:skip=CKV_AZURE_13:checkov reads the retired authsettings (V1) shape, properties.enabled; authsettingsV2 turns authentication on with platform.enabled, set below. A false positive.
    // checkov:skip=CKV_AZURE_63:A web-app siteConfig check applied to the authentication config resource; the site's logging is in api.bicep (Functions logs go to Application Insights).
    // checkov:skip=CKV_AZURE_65:A web-app siteConfig check applied to the authentication config resource: detailed error pages are a web-app setting the function app does not use.
    // checkov:skip=CKV_AZURE_66:A web-app siteConfig check applied to the authentication config resource: failed-request tracing is an IIS web-app setting the function app does not use.
    // checkov:skip=CKV_AZURE_80:A web-app siteConfig check applied to the authentication config resource: no .NET Framework runs here (Python on Flex Consumption).
    // checkov:skip=CKV_AZURE_88:A web-app siteConfig check applied to the authentication config resource: Flex Consumption has no Azure Files content share.
    // checkov:skip=CKV_AZURE_222:A web-app check applied to the authentication config resource; public access of the site is explained at the site (the webhooks are called from the internet).
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      excludedPaths: webhookPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            clientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

