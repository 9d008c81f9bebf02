// The operator console's Entra ID app registration (docs/operations.md): sign-in only (an ID
// token carrying the user's app roles; no client secret), the operator app role, its service
// principal (which refuses users without the role), and the operator given the role.
// App Service authentication is configured with it in console-auth.bicep.
//
// Made with the Microsoft Graph Bicep extension: the deploying user must be allowed to register
// applications (Application.ReadWrite.All, or the tenant's default "users can register
// applications"). Without it, deploy with consoleSignIn=false and follow the manual steps in
// docs/operations.md. checkov's Bicep parser does not read the `extension` statement and has no
// checks for Microsoft Graph resources: this file is skipped there (infra/.checkov.yaml) and
// held by tests/infra/test_bicep_structure.py instead.

extension 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0'

@description('Name of the function app (names the registration).')
param siteName string

@description('Default host name of the function app (the sign-in callback lives there).')
param defaultHostName string

@description('The app role a user needs for the console (MDSYNC_CONSOLE_ROLE).')
param consoleRole string = 'mdsync.operator'

@description('Object id of the user or group given the console role; empty gives it to nobody.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

// A stable id for the role: the same deployment always names the same role.
var operatorRoleId = guid(subscription().id, resourceGroup().id, siteName, consoleRole)

resource consoleApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: 'mdsync-console-${siteName}'
  displayName: 'mdsync console (${siteName})'
  signInAudience: 'AzureADMyOrg'
  web: {
    redirectUris: [
      'https://${defaultHostName}/.auth/login/aad/callback'
    ]
    // Sign-in only (an ID token with the user's roles): no client secret to store or rotate.
    implicitGrantSettings: {
      enableIdTokenIssuance: true
    }
  }
  appRoles: [
    {
      id: operatorRoleId
      value: consoleRole
      displayName: 'mdsync operator'
      description: 'Sees the mdsync console and may replay, re-sync, pause and resume the sync.'
      allowedMemberTypes: [
        'User'
      ]
      isEnabled: true
    }
  ]
}

resource consolePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: consoleApp.appId
  // Entra ID itself refuses users who were not given the role: a second lock before the app's.
  appRoleAssignmentRequired: true
}

resource operatorAssignment 'Microsoft.Graph/appRoleAssignedTo@v1.0' = if (!empty(operatorPrincipalId) && operatorPrincipalType != 'ServicePrincipal') {
  appRoleId: operatorRoleId
  principalId: operatorPrincipalId
  resourceId: consolePrincipal.id
}

output clientId string = consoleApp.appId
output operatorRoleId string = operatorRoleId
