// Package pipeline is the engine that moves one account's messages from a
// Source to a Destination, recording progress in a Ledger so that a run can
// be interrupted at any point and resumed without losing or duplicating mail.
//
// The order of effects is the contract. Each attempt first opens its
// source and destination sessions together (Job.Open, or OpenSource and
// OpenDestination at the same time), then:
//
//  1. Reconcile: entries left pending by an interrupted run are looked up on
//     the destination (by UID range and size, confirmed by digest; by
//     Message-ID when the mailbox's UIDVALIDITY changed) and become done when
//     found; otherwise they are forgotten and the message is sent again.
//     Nothing is re-sent before this step. A forgotten entry leaves a
//     Resent record in the same transaction: its first APPEND may still
//     land late, and settleResent (at the start and the end of each
//     attempt) removes such a late copy next to the one the ledger names,
//     or records it as done when it is the only copy.
//  2. List the source page by page (Source.List); for each page, skip what
//     the ledger has as done or skipped, hand the flag changes of earlier
//     copies to the batch writers, and fetch the rest (step 3) before the
//     next page is listed. No step holds a record of every message of the
//     account: memory stays flat in the mailbox's size (issue 20).
//  3. Fetch each remaining message once into a spool (memory, then a temp
//     file), normalising bare LF to CRLF and hashing it. A message over the
//     size limit (SizeLimit) is not fetched when the source announces it
//     so (SizeLimit.SkipAnnounced), and the spool stops taking its bytes
//     at the limit otherwise; either way it is recorded as skipped in
//     step 6, and nothing of it is sent.
//  4. Record the batch's entries as pending, durably.
//  5. Append the batch (MULTIAPPEND or pipelined APPEND). A session may send
//     its next batch, after step 4 for it, before this one's outcome is
//     known (AppendStarter); at most two batches per session are in flight.
//  6. Commit the outcome: done (with APPENDUID), or skipped with a reason,
//     in the order the batches were sent.
//  7. Only then, and only with DeleteSource, delete at the source the
//     messages the ledger has as done; with DeleteAfter, only those done
//     for at least that long (Entry.DoneAt, the time a message first became
//     done, against Options.Now). Deletions go out between pages (the
//     source is idle then) and at the end of the attempt. For POP3 they
//     take effect at QUIT, which is sent only after every commit. The
//     ledger keeps the done entries of deleted messages: a deletion cut
//     short is simply issued again by the next run, for the messages the
//     source still lists.
//  8. Close the sessions. Deletions issued are confirmed by the source's
//     close (POP3's QUIT) before the ledger records them as deleted, so
//     such a close is always waited for; with Runner.CloseBehind every
//     other close goes on behind RunAccount, and the account's next
//     attempt and Runner.WaitClosed wait for it.
//
// Errors are sorted by ClassOf: per-message errors skip that message and are
// reported; fatal errors stop the account; transient errors end the attempt,
// and the Runner tries the account again after a backoff, resuming from the
// ledger.
package pipeline
