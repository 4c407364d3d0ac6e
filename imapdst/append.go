package imapdst

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/mutf7"
	"github.com/mailferry/mailferry/pipeline"
)

// dateTimeLayout is IMAP's date-time (RFC 3501 §9) for APPEND's internal date.
const dateTimeLayout = "02-Jan-2006 15:04:05 -0700"

// Append stores msgs in mailbox and returns one result per message, in
// order: UIDValidity and UID from APPENDUID (RFC 4315 §3; zero when the
// server does not say), or Err for a message the server refused
// (ClassPerMessage, or ClassFatal such as [OVERQUOTA]).
//
// With MULTIAPPEND (RFC 3502) messages go in batches bounded by
// MaxBatchMessages and MaxBatchBytes; a refused batch stored nothing, so its
// messages are sent again one by one to find the bad one, unless the refusal
// is fatal or transient. When every batch has two messages or more, all are
// sent before the first reply is read (see StartAppend). Without
// MULTIAPPEND up to MaxInFlight APPENDs are pipelined. A [TRYCREATE] refusal
// creates the mailbox and sends again, once. A message refused for its
// keywords (see keywordRefusal) is sent again without its long keywords,
// then without any (dropKeywords); its result lists the keywords dropped.
//
// A non-nil error means Append stopped early: results then cover a prefix
// of msgs. After a fatal or transient refusal the messages without a result
// were not stored (or, if in flight, may be found by reconciliation); after a
// connection failure (network error, BYE) their outcome is unknown and the
// caller must reconcile them before sending them again.
func (a *Appender) Append(ctx context.Context, mailbox string, msgs []pipeline.OutgoingMessage) ([]pipeline.AppendResult, error) {
	return a.StartAppend(ctx, mailbox, msgs)()
}

var _ pipeline.AppendStarter = (*Appender)(nil)

// StartAppend is Append in two halves: it sends msgs and returns without
// waiting for the server, and wait returns what Append would have. So the
// next batch can go out while the server stores this one, and the round
// trip and the server's commit are no longer waited for between batches.
//
// Only whole MULTIAPPEND commands of at least two messages go out this way;
// anything else (no MULTIAPPEND, a single message) completes before
// StartAppend returns. A refusal is dealt with in wait as in Append: a
// refused batch is sent again message by message, a [TRYCREATE] creates
// the mailbox, by then after the commands started later. The server reads
// one command at a time, so a later batch's bytes wait in the socket until
// it is done with the earlier one. Each wait must be called, in the order
// of the StartAppend calls, and before ctx ends, which closes the
// connection: the outcome of messages in flight is then unknown.
func (a *Appender) StartAppend(ctx context.Context, mailbox string, msgs []pipeline.OutgoingMessage) (wait func() ([]pipeline.AppendResult, error)) {
	finished := func(res []pipeline.AppendResult, err error) func() ([]pipeline.AppendResult, error) {
		return func() ([]pipeline.AppendResult, error) { return res, err }
	}
	if a.err != nil {
		return finished(nil, a.err)
	}
	if err := ctx.Err(); err != nil {
		return finished(nil, err)
	}
	if mailbox == "" || strings.ContainsAny(mailbox, "\r\n\x00") || !utf8.ValidString(mailbox) {
		return finished(nil, fatal(invalidArg("mailbox name %q", mailbox)))
	}
	run := &appendRun{
		ctx:     ctx,
		a:       a,
		mailbox: mailbox,
		msgs:    msgs,
		args:    make([]string, len(msgs)),
		results: make([]pipeline.AppendResult, len(msgs)),
		known:   make([]bool, len(msgs)),
		dropped: make([][]string, len(msgs)),
	}
	var todo []int
	// Once per batch: appendLimit looks through every capability, which
	// per message was 1% of mailferry's CPU on small mail.
	limit := a.caps.appendLimit()
	for i, m := range msgs {
		args, err := a.prepare(m, limit)
		if err != nil {
			run.set(i, pipeline.AppendResult{Err: fmt.Errorf("appending message %d to %q: %w", i, mailbox, err)})
			continue
		}
		run.args[i] = args
		todo = append(todo, i)
	}
	// The connection is closed when ctx ends until the last wait returns.
	// reconnect may replace a.ic meanwhile, hence a.ic each time.
	a.ic.CloseOnDone(ctx)
	a.inflight++
	end := func(err error) ([]pipeline.AppendResult, error) {
		if a.inflight--; a.inflight == 0 {
			a.ic.CloseOnDone(context.Background())
		}
		return run.prefix(), idleconn.WithContextErr(ctx, err)
	}
	var batches [][]int
	if a.multiAppend() {
		batches = a.batches(msgs, todo)
	}
	pipelined := len(batches) > 0
	for _, b := range batches {
		pipelined = pipelined && len(b) > 1
	}
	if !pipelined {
		var err error
		if len(batches) > 0 {
			for _, b := range batches {
				if err = run.batch(b); err != nil {
					break
				}
			}
		} else {
			err = run.each(todo)
		}
		res, err := end(err)
		return finished(res, err)
	}
	cmds := make([]*command, 0, len(batches))
	var sendErr error
	for _, b := range batches {
		cmd, err := a.startAppend(run, b)
		if err != nil {
			sendErr = err
			break
		}
		cmds = append(cmds, cmd)
	}
	if sendErr == nil {
		sendErr = a.flush()
	}
	return func() ([]pipeline.AppendResult, error) {
		err := sendErr
		for k := 0; err == nil && k < len(cmds); k++ {
			err = run.complete(cmds[k], batches[k])
		}
		return end(err)
	}
}

// prepare checks m and formats its APPEND arguments before the literal:
// " (flags)" and " \"date-time\"", each only when set. lim is the
// server's APPENDLIMIT (a.caps.appendLimit), 0 when none.
func (a *Appender) prepare(m pipeline.OutgoingMessage, lim int64) (string, error) {
	if m.Body == nil || m.Size < 0 {
		return "", pipeline.Permanent(invalidArg("message without body or with size %d", m.Size))
	}
	if lim > 0 && m.Size > lim {
		return "", pipeline.Permanent(fmt.Errorf("%w: %d bytes, server APPENDLIMIT is %d (not sent)", ErrTooBig, m.Size, lim))
	}
	if m.Binary && !a.caps["BINARY"] {
		return "", pipeline.Permanent(fmt.Errorf("%w (not sent)", ErrNoBinary))
	}
	var b strings.Builder
	var flags []string
	for _, f := range m.Flags {
		// RFC 3501 §2.3.2: \Recent cannot be set by a client.
		if strings.EqualFold(f, `\Recent`) {
			continue
		}
		// A flag the server cannot parse makes it answer BAD in the middle of
		// the command, and servers (seen with Dovecot 2.3) then read the rest
		// of a non-synchronising literal as commands. So refuse it here.
		if !validFlag(f) {
			return "", pipeline.Permanent(invalidArg("flag %q is neither a system flag nor a keyword atom", f))
		}
		flags = append(flags, f)
	}
	if len(flags) > 0 {
		b.WriteString(" (" + strings.Join(flags, " ") + ")")
	}
	if !m.InternalDate.IsZero() {
		// In UTC: the date is an instant, and GNU Mailutils 3.15 drops
		// the zone offset of an APPEND date (10:00:00 +0100 is stored as
		// 10:00:00 +0000), which would move it by the offset.
		b.WriteString(` "` + m.InternalDate.UTC().Format(dateTimeLayout) + `"`)
	}
	return b.String(), nil
}

// validFlag reports whether f is a flag a server accepts in APPEND
// (RFC 3501 §9): a system flag, or a keyword atom. Flag extensions
// ("\Foo") are refused by servers as unknown system flags.
func validFlag(f string) bool {
	if strings.HasPrefix(f, `\`) {
		switch strings.ToLower(f) {
		case `\answered`, `\flagged`, `\deleted`, `\seen`, `\draft`:
			return true
		}
		return false
	}
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		if !isAtomChar(f[i]) {
			return false
		}
	}
	return true
}

// batches splits the message indexes into MULTIAPPEND batches of at most
// MaxBatchMessages messages and MaxBatchBytes bytes; a larger message is a
// batch of its own.
func (a *Appender) batches(msgs []pipeline.OutgoingMessage, idx []int) [][]int {
	var out [][]int
	for len(idx) > 0 {
		n, size := 0, int64(0)
		for n < len(idx) && n < a.opts.MaxBatchMessages && (n == 0 || size+msgs[idx[n]].Size <= a.opts.MaxBatchBytes) {
			size += msgs[idx[n]].Size
			n++
		}
		out = append(out, idx[:n:n])
		idx = idx[n:]
	}
	return out
}

// appendRun is the state of one Append call.
type appendRun struct {
	ctx     context.Context
	a       *Appender
	mailbox string
	msgs    []pipeline.OutgoingMessage
	args    []string
	results []pipeline.AppendResult
	known   []bool
	created bool // TRYCREATE handled once already
	// dropped are the keywords left out of a message's second APPEND
	// after the server refused them; nil when it was not resent.
	dropped [][]string
}

func (r *appendRun) set(i int, res pipeline.AppendResult) {
	r.results[i], r.known[i] = res, true
}

// prefix returns the results up to the first message whose outcome is unknown.
func (r *appendRun) prefix() []pipeline.AppendResult {
	n := 0
	for n < len(r.known) && r.known[n] {
		n++
	}
	return r.results[:n:n]
}

// ok records a successful APPEND of cmd's messages with their APPENDUIDs.
func (r *appendRun) ok(cmd *command) {
	var validity uint32
	var uids []uint32
	if cmd.reply.Code == "APPENDUID" {
		var err error
		validity, uids, err = parseAppendUID(cmd.reply.CodeArg, len(cmd.idx))
		if err != nil {
			// The messages are stored; only their UIDs are unknown.
			r.a.log.Warn("ignoring malformed APPENDUID", "mailbox", r.mailbox, "err", err)
			validity, uids = 0, nil
		}
	}
	for k, i := range cmd.idx {
		res := pipeline.AppendResult{DroppedFlags: r.dropped[i]}
		if uids != nil {
			res.UIDValidity, res.UID = validity, uids[k]
		}
		r.set(i, res)
	}
}

// each appends the messages one per command, up to MaxInFlight commands
// before their replies. It stops sending at a fatal or transient refusal and
// returns it once the commands in flight are done.
func (r *appendRun) each(idx []int) error {
	a := r.a
	queue := idx
	var inflight []*command
	var retry []int // refused with [TRYCREATE], to send again after CREATE
	var stop error
	for len(queue) > 0 || len(inflight) > 0 || len(retry) > 0 {
		if stop == nil && len(inflight) == 0 && len(queue) > 0 && a.spentErrors() && a.inflight <= 1 {
			// The server ends a connection after so many refusals, and
			// with it the APPENDs in flight: go on on a new one first.
			a.log.Info("the server ends a connection after so many errors; going on on a new one",
				"refusals", a.refusals, "provider", a.provider.Name)
			if err := a.renew(r.ctx); err != nil {
				return err
			}
		}
		for stop == nil && len(retry) == 0 && len(queue) > 0 && len(inflight) < a.maxInFlight() {
			cmd, err := a.startAppend(r, queue[:1])
			if err != nil {
				return err
			}
			queue = queue[1:]
			inflight = append(inflight, cmd)
		}
		if len(inflight) == 0 {
			if stop != nil {
				break
			}
			// Every command in flight has completed: create, then resend.
			if err := r.create(); err != nil {
				return err
			}
			queue = append(retry, queue...)
			retry = nil
			continue
		}
		cmd := inflight[0]
		inflight = inflight[1:]
		if err := a.wait(cmd); err != nil {
			return err
		}
		i := cmd.idx[0]
		rerr := a.replyError(cmd)
		if cmd.reply.Status == "BAD" && cmd.nonSync {
			// The server stopped parsing mid-command and may take the rest
			// of the literal for commands: drop the connection at once.
			// The message was not stored; those in flight are unknown.
			r.set(i, pipeline.AppendResult{Err: rerr})
			return a.fail(transient(fmt.Errorf("imapdst: closing connection to %s after BAD to an APPEND with a non-synchronising literal: %w", a.opts.Addr, rerr)))
		}
		switch {
		case rerr == nil:
			r.ok(cmd)
		case mailboxGone(cmd.reply) && !r.created:
			retry = append(retry, i)
		case keywordRefusal(cmd.reply) && r.dropKeywords(i):
			a.log.Warn("destination refused the message's keywords; sending it again without them",
				"mailbox", r.mailbox, "keywords", r.dropped[i], "err", rerr)
			queue = append([]int{i}, queue...)
		default:
			switch pipeline.ClassOf(rerr) {
			case pipeline.ClassPerMessage:
				r.set(i, pipeline.AppendResult{Err: rerr})
			case pipeline.ClassFatal:
				r.set(i, pipeline.AppendResult{Err: rerr})
				stop = cmp(stop, rerr)
			default:
				stop = cmp(stop, rerr)
			}
		}
	}
	return stop
}

// mailboxGone reports whether an APPEND refusal says the mailbox does not
// exist: [TRYCREATE] (RFC 3501 §6.3.11), or Dovecot 2.3's bare "NO Mailbox
// was deleted under us" to an APPEND that was under way when the mailbox
// was deleted (the next APPEND gets [TRYCREATE]).
//
// GNU Mailutils 3.15 puts the code after the command name ("NO APPEND
// [TRYCREATE] failed"), where RFC 3501 §7.1 does not allow it and parsers
// leave it in the text: imapconn.CodeInText finds it there.
func mailboxGone(reply response) bool {
	return reply.Code == "TRYCREATE" ||
		reply.Status == "NO" && reply.Code == "" && imapconn.CodeInText(reply.Text) == "TRYCREATE" ||
		reply.Status == "NO" && reply.Code == "" && strings.Contains(strings.ToLower(reply.Text), "deleted under us")
}

// keywordRefusal reports whether an APPEND refusal blames the flag list:
// a BAD (a flag the server cannot parse), or a NO whose text speaks of
// keywords or flags. Dovecot 2.3 answers "NO [CANNOT] Keyword length too
// long" for keywords over mail_max_keyword_length (default 50) and "NO
// [CANNOT] Invalid characters in keyword"; such a message is stored fine
// without them.
func keywordRefusal(reply response) bool {
	if reply.Status == "BAD" {
		return true
	}
	text := strings.ToLower(reply.Text)
	return reply.Status == "NO" && !mailboxGone(reply) &&
		(strings.Contains(text, "keyword") || strings.Contains(text, "flag"))
}

// longKeyword is Dovecot's default mail_max_keyword_length: a keyword
// longer than this is the first suspect when a server refuses keywords.
const longKeyword = 50

// dropKeywords prepares message i's APPEND again with fewer keywords and
// records those left out: at the first refusal only the keywords longer
// than longKeyword when there are some (and others to keep), else every
// keyword. It returns false when no keyword is left to drop, so a resend
// would be refused the same way.
func (r *appendRun) dropKeywords(i int) bool {
	m := r.msgs[i]
	var keywords, long []string
	for _, f := range m.Flags {
		if !strings.HasPrefix(f, `\`) {
			keywords = append(keywords, f)
			if len(f) > longKeyword {
				long = append(long, f)
			}
		}
	}
	drop := keywords
	if r.dropped[i] == nil && len(long) > 0 && len(long) < len(keywords) {
		drop = long
	}
	if len(drop) == 0 || len(drop) == len(r.dropped[i]) {
		return false
	}
	var kept []string
	for _, f := range m.Flags {
		if !slices.Contains(drop, f) {
			kept = append(kept, f)
		}
	}
	m.Flags = kept
	args, err := r.a.prepare(m, r.a.caps.appendLimit())
	if err != nil {
		return false
	}
	r.args[i], r.dropped[i] = args, drop
	return true
}

// cmp returns the first non-nil error.
func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// batch sends idx as one MULTIAPPEND (RFC 3502). The command is atomic: a
// refusal stored none of the messages.
func (r *appendRun) batch(idx []int) error {
	if len(idx) == 1 {
		return r.each(idx)
	}
	a := r.a
	cmd, err := a.startAppend(r, idx)
	if err != nil {
		return err
	}
	if err := a.wait(cmd); err != nil {
		return err
	}
	if a.replyError(cmd) == nil {
		r.ok(cmd)
		return nil
	}
	return r.refused(cmd, idx)
}

// refused deals with a refused MULTIAPPEND of the messages idx, which stored
// none of them: after [TRYCREATE] (or Dovecot's "deleted under us") it creates the mailbox and sends the batch
// again (once per Append call); a fatal or transient refusal is returned;
// otherwise the messages are sent one by one to find the bad one.
func (r *appendRun) refused(cmd *command, idx []int) error {
	a := r.a
	rerr := a.replyError(cmd)
	if mailboxGone(cmd.reply) && !r.created {
		if err := r.create(); err != nil {
			return err
		}
		return r.batch(idx)
	}
	if c := pipeline.ClassOf(rerr); c == pipeline.ClassFatal || c == pipeline.ClassTransient {
		return rerr
	}
	if cmd.reply.Status == "BAD" && cmd.nonSync {
		// As in each: the rest of the batch may be read as commands.
		err := a.fail(transient(fmt.Errorf("imapdst: closing connection to %s after BAD to a MULTIAPPEND with non-synchronising literals: %w", a.opts.Addr, rerr)))
		if a.inflight > 1 {
			// Other batches were sent on this connection (StartAppend):
			// their outcome is unknown now, so no new connection here.
			return err
		}
		if err := a.reconnect(r.ctx); err != nil {
			return err
		}
	}
	a.log.Info("MULTIAPPEND refused, sending its messages one by one",
		"mailbox", r.mailbox, "messages", len(idx), "err", rerr)
	if err := r.each(idx); err != nil {
		return err
	}
	// A BAD to a MULTIAPPEND whose messages were then each taken is a
	// refusal of MULTIAPPEND itself, advertised or not: given up for the
	// server (RFC 3502's batches become single APPENDs, pipelined).
	if cmd.reply.Status == "BAD" && !slices.ContainsFunc(idx, func(i int) bool { return r.results[i].Err != nil || r.dropped[i] != nil }) {
		a.opts.Shared.Quirks.Refuse(imapconn.FeatureMultiAppend, rerr, "one APPEND per message, pipelined")
	}
	return nil
}

// multiAppend reports whether batches go as MULTIAPPEND (RFC 3502): the
// server offers it and has not refused it before.
func (a *Appender) multiAppend() bool { return a.caps.multiAppend(a.opts.Shared) }

// complete waits for a MULTIAPPEND that StartAppend sent, of the messages
// idx, and deals with its completion as batch does.
func (r *appendRun) complete(cmd *command, idx []int) error {
	a := r.a
	if err := a.wait(cmd); err != nil {
		return err
	}
	if a.replyError(cmd) == nil {
		r.ok(cmd)
		return nil
	}
	return r.refused(cmd, idx)
}

// create runs CREATE after a [TRYCREATE] refusal (RFC 3501 §6.3.11); a
// reply that says the mailbox exists (created meanwhile by someone else,
// or a server that answers [TRYCREATE] for a mailbox it has) is fine: the
// APPEND is sent once more, and refused per message if the server says
// [TRYCREATE] again.
//
// INBOX cannot be created (RFC 3501 §6.3.3: CREATE INBOX is an error). An
// mbox server with no INBOX file yet (GNU Mailutils, for an account that
// never received mail) answers [TRYCREATE] for it and creates it when it
// is opened: so INBOX is EXAMINEd (read-only, which never makes the
// server write the mbox back) and left again, and a refusal of that is
// only logged.
func (r *appendRun) create() error {
	r.created = true
	a := r.a
	if strings.EqualFold(r.mailbox, "INBOX") {
		_, err := a.simple("EXAMINE", r.mailbox)
		var re *ReplyError
		if errors.As(err, &re) {
			a.log.Warn("the server answered [TRYCREATE] for INBOX and refused to open it", "reply", re)
			return nil
		}
		if err != nil {
			return err
		}
		a.log.Info("opened INBOX after TRYCREATE, which creates it on mbox servers")
		if a.caps["UNSELECT"] || a.caps["IMAP4REV2"] {
			if _, err := a.simple("UNSELECT", ""); err != nil && !errors.As(err, &re) {
				return err
			}
		}
		return nil
	}
	_, err := a.simple("CREATE", r.mailbox)
	var re *ReplyError
	if errors.As(err, &re) && imapconn.AlreadyExists(re.Code, re.Text) {
		a.log.Info("CREATE after TRYCREATE says the mailbox exists; sending again", "mailbox", r.mailbox, "reply", re)
		return nil
	}
	if err == nil {
		a.log.Info("created mailbox after TRYCREATE", "mailbox", r.mailbox)
		a.opts.Shared.forget(r.mailbox)
	}
	return err
}

// startAppend writes one APPEND carrying the messages idx (several make a
// MULTIAPPEND). With synchronising literals it waits for each "+"; when the
// server completes the command instead (a NO before "+"), it stops there
// with the connection in step. The caller waits for the completion.
func (a *Appender) startAppend(r *appendRun, idx []int) (*command, error) {
	cmd := a.newCommand("APPEND", r.mailbox)
	cmd.n, cmd.idx = len(idx), idx
	a.write(cmd.tag+" APPEND ", "")
	if rejected, err := a.writeString(cmd, mutf7.Encode(r.mailbox), false); err != nil || rejected {
		return cmd, err
	}
	for _, i := range idx {
		m := r.msgs[i]
		a.write(r.args[i]+" ", "")
		if rejected, err := a.writeBody(cmd, m.Body, m.Size, m.Binary); err != nil || rejected {
			return cmd, err
		}
	}
	a.write("\r\n", "")
	a.tr.clientEnd()
	return cmd, nil
}
