// Package oauthtoken obtains the OAuth2 access tokens that mailferry sends
// with XOAUTH2 or OAUTHBEARER, by the grants hosted mail providers require
// of a migration tool:
//
//   - ServiceAccount: the JWT bearer grant (RFC 7523 §2.1) with a Google
//     service account's JSON key and the mailbox's address as subject
//     (Google Workspace domain-wide delegation);
//   - ClientCredentials: the client credentials grant (RFC 6749 §4.4) with
//     a client secret or a certificate's client assertion (RFC 7523 §2.2),
//     as Microsoft 365 app-only access wants it;
//   - Device: the device authorization grant (RFC 8628) run once by
//     DeviceLogin, which stores the refresh token in a file; later runs use
//     it as RefreshToken does;
//   - RefreshToken: the refresh token grant (RFC 6749 §6) against any token
//     endpoint, the refresh token read from a file.
//
// A Source caches one login's token in memory, fetches a new one before it
// expires, and drops it when a server rejects it (Rejected), so the next
// connection gets a fresh one. Tokens are secret.Values: never printed,
// logged or put in errors. Token endpoint failures are *Error values that
// name the grant and say what an administrator should check; their class
// (pipeline.Classifier) is fatal when the endpoint refused the grant, and
// transient when it could not be reached.
//
// The OAuth protocol work is golang.org/x/oauth2's (its jwt and
// clientcredentials packages, DeviceAuth); this package adds the key and
// certificate handling, the cache, the token file and the errors.
package oauthtoken
