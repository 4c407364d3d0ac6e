// Package mapping holds the pure decisions the pipeline makes about each
// message before it is appended: which header fields it has, what its
// Message-ID is, which internal date and flags to send, and which destination
// folder it goes to. Nothing here does I/O, talks to a network or logs; every
// function is a function of its arguments (the current time is passed in).
//
// Standards: RFC 5322 (header fields §2.2, unfolding §2.2.3, date-time §3.3
// and its obsolete forms §4.3, msg-id §3.6.4), RFC 5321 §4.4 (Received:
// trace fields), RFC 3501/9051 (flags, atoms, PERMANENTFLAGS, INBOX), and the
// mbox Status:/X-Status: convention used by mutt, Pine and Thunderbird.
package mapping
