// Package imapsrc reads mail from an IMAP server as a pipeline.Source: the
// folders with their hierarchy and special-use attributes, and every message
// byte for byte with its UID, flags and INTERNALDATE.
//
// It speaks IMAP4rev1 (RFC 3501) through go-imap v2's imapclient (pinned at
// v2.0.0-beta.8) over a connection internal/imapconn dials and logs in (idle
// timeouts that extend with progress, cancellation by context), with NAMESPACE (RFC 2342),
// LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154), LIST-STATUS (RFC 5819),
// UIDPLUS (RFC 4315) and ESEARCH (RFC 4731) where the server offers them, and TLS per RFC 8314
// (implicit) or RFC 2595 (STARTTLS).
//
// Folders are only ever EXAMINEd (read-only, RFC 3501 §6.3.2) and bodies
// fetched with BODY.PEEK[], so reading never changes \Seen. Only Delete
// SELECTs a folder read-write, and it removes exactly the UIDs it was given
// with UID STORE and UID EXPUNGE.
//
// List lists the folders Options.Include and Exclude select, and in them
// the messages inside the age window of Options.MaxAge and MinAge, a
// batch of UIDs at a time.
//
// A message's key is "<mailbox>\x00<uidvalidity>\x00<uid>" (FormatKey,
// ParseKey): stable across sessions as long as the folder's UIDVALIDITY is;
// KeyFolder tells the engine which keys belong to one folder and to one
// UIDVALIDITY of it (KeyPrefix), so that the entries of an earlier
// UIDVALIDITY can be matched to the messages listed after the change.
//
// go-imap beta.8 has traps this package guards against: a literal cut by a
// dropped connection reads as a short message with no error, so every
// body's length is checked against its announced size and every FETCH's
// completion is checked; after such a read error the FETCH is abandoned
// unread, since draining it would read the literal again while go-imap's
// reader goroutine reads the same buffer; a FETCH response whose UID
// follows its literal is silently dropped, so a UID FETCH that returns
// nothing is retried by sequence number before the message is declared
// gone; an untagged response it does not know closes the connection, which
// surfaces here as a transient error naming the response, so the engine
// reconnects and resumes.
package imapsrc
