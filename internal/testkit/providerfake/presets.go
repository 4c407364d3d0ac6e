package providerfake

import "strconv"

// The presets emulate what Google and Microsoft publish about their IMAP
// servers and what their users report (docs/servers.md lists the sources
// and which behaviours are emulated). Capabilities the fake does not
// implement (IDLE, QUOTA, COMPRESS, MOVE, CONDSTORE) are left out of the
// lists; the rest are the servers'.

// GmailAppendLimit is Gmail's APPENDLIMIT: 35,651,584 bytes (34 MiB).
const GmailAppendLimit = 35651584

// GmailDailyLimitText is Gmail's refusal once an account has moved more
// than its daily IMAP bandwidth.
const GmailDailyLimitText = "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"

// Gmail returns the options of Gmail's IMAP server (imap.gmail.com):
// greeting "Gimap ready", X-GM-EXT-1, labels as folders with [Gmail]/All
// Mail showing every message but Trash and Spam, special-use folders,
// APPENDLIMIT=35651584, LITERAL- and no MULTIAPPEND or LITERAL+; an APPEND
// of a message whose Message-ID the account holds is answered OK with the
// UID of the one there and stores nothing (the folder's label is added
// to it). DailyUpload, when a test sets it, is answered
// GmailDailyLimitText and the connection ended, as Gmail does once the
// day's upload is spent.
func Gmail() Options {
	return Options{
		Greeting: "Gimap ready for requests from 127.0.0.1 a1mb12345678abc",
		Caps: []string{"IMAP4rev1", "UNSELECT", "NAMESPACE", "ID", "CHILDREN", "X-GM-EXT-1", "UIDPLUS", "ENABLE",
			"ESEARCH", "LIST-EXTENDED", "LITERAL-", "SPECIAL-USE", "SASL-IR", "AUTH=XOAUTH2"},
		IDName:          "GImap",
		Gmail:           true,
		AppendLimit:     GmailAppendLimit,
		Duplicates:      DuplicatesDroppedUID,
		DailyLimitReply: Reply{Status: "NO", Text: GmailDailyLimitText, Bye: "[UNAVAILABLE] Account exceeded command or bandwidth limits."},
	}
}

// Microsoft365Greeting is Exchange Online's greeting (the bracketed part
// names the backend server, base64 of UTF-16).
const Microsoft365Greeting = "The Microsoft Exchange IMAP4 service is ready. [TQBOADIAUABSADAAMQBDAEEAMAAwADQAOAAuAG4AYQBtAHAAcgBkADAAMQAuAHAAcgBvAGQALgBvAHUAdABsAG8AbwBrAC4AYwBvAG0A]"

// Microsoft365Throttled is Exchange Online's throttling reply, with the
// wait it asks for; it is followed by "* BYE Connection closed. 14".
func Microsoft365Throttled(ms int) Reply {
	return Reply{Status: "BAD", Text: "Request is throttled. Suggested Backoff Time: " + strconv.Itoa(ms) + " milliseconds",
		Bye: "Connection closed. 14"}
}

// Microsoft365NonMail are the folders of an English Exchange Online
// mailbox that hold items other than mail, as its IMAP server lists them
// (imapsync's Office 365 notes and users' LIST transcripts): the
// calendar (with the Birthdays calendar), contacts, journal, notes and
// tasks, and Sync Issues with its three subfolders.
var Microsoft365NonMail = []string{"Calendar", "Calendar/Birthdays", "Contacts", "Journal", "Notes", "Tasks",
	"Sync Issues", "Sync Issues/Conflicts", "Sync Issues/Local Failures", "Sync Issues/Server Failures"}

// Microsoft365 returns the options of Exchange Online (outlook.office365.com):
// its greeting and capabilities (UIDPLUS, LITERAL+, no MULTIAPPEND, no
// SPECIAL-USE in CAPABILITY), folder names compared without case, the
// folders of items that are not mail listed as Exchange lists them
// (Microsoft365NonMail),
// \Flagged ignored by APPEND (it sticks only through STORE), the
// connection ended after 10 errors, and 20 connections per user. Tests
// script the throttling (Microsoft365Throttled) with Hook.
func Microsoft365() Options {
	return Options{
		Greeting:           Microsoft365Greeting,
		Caps:               []string{"IMAP4", "IMAP4rev1", "AUTH=XOAUTH2", "SASL-IR", "UIDPLUS", "ID", "UNSELECT", "CHILDREN", "NAMESPACE", "LITERAL+"},
		CaseInsensitive:    true,
		NonMailFolders:     Microsoft365NonMail,
		DropAtAppend:       []string{`\Flagged`},
		MaxErrors:          10,
		ErrorsBye:          "Connection closed. 14",
		MaxConnections:     20,
		TooManyConnections: "[LIMIT] Too many concurrent connections.",
	}
}
