// Package imapdst is mailferry's IMAP destination: it stores the messages it
// is given and reports exactly what happened to each one. It never decides
// whether a message should be copied.
//
// A Destination holds two connections to the server:
//
//   - an Appender, a small IMAP client of our own that only authenticates and
//     appends: APPEND (RFC 3501 §6.3.11, RFC 9051 §6.3.12), MULTIAPPEND
//     (RFC 3502) in batches bounded by count and bytes, non-synchronising
//     literals (RFC 7888 LITERAL+ / LITERAL-), several APPENDs in flight when
//     MULTIAPPEND is not offered, APPENDUID with uid-sets (RFC 4315 §3),
//     APPENDLIMIT (RFC 7889) and the response codes of RFC 5530. go-imap v2
//     beta.8 cannot send MULTIAPPEND, cannot parse a uid-set APPENDUID, never
//     uses LITERAL+ above 4 KiB and drops its connection when an APPEND is
//     refused before the continuation, so this path is ours;
//   - a control connection driven by go-imap v2's imapclient for LIST,
//     CREATE, STATUS, EXAMINE, SEARCH and FETCH.
//
// Both connections use implicit TLS or STARTTLS (RFC 8314, RFC 2595) with the
// caller's *tls.Config; authentication without TLS is refused unless
// Options.AllowPlaintext is set. Credentials are never logged or traced. The
// control connection is dialled and logged in by internal/imapconn, the
// IMAP source's and verify's way; the appender shares its login rules
// (imapconn.Credentials) and errors.
//
// Errors from the server are *ReplyError values, a refused login a
// *LoginError and a rejected OAuth2 token a *TokenRejectedError; they
// classify themselves for the pipeline (pipeline.ClassOf); network errors
// are transient.
package imapdst
