package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
	"github.com/mailferry/mailferry/spool"
)

// copyOptions are the flags of `mailferry copy`.
type copyOptions struct {
	common      commonOptions
	srcPassword passwordFlags
	dstPassword passwordFlags
	// srcOAuth2 and dstOAuth2 are the oauth2 keys of --source-oauth2 and
	// --dest-oauth2: the side logs in with tokens from that grant.
	srcOAuth2, dstOAuth2 map[string]string
	policy               policyFlags
	folders              folderOptions
}

// register adds the flags for IMAP sources.
func (fo *folderOptions) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&fo.include, "folder", nil, "IMAP source: copy only these folders (names or patterns: * any, % one level; repeat or separate with commas)")
	fs.StringSliceVar(&fo.exclude, "exclude-folder", nil, "IMAP source: do not copy these folders (patterns as for --folder; wins over --folder)")
	fs.BoolVar(&fo.syncFlags, "sync-flags", true, "IMAP source: bring the flags of messages copied earlier up to date")
	fs.BoolVar(&fo.specialUse, "special-use", true, "IMAP source: map Sent, Drafts, Trash, Junk and Archive to the destination's folders of the same role")
	fs.DurationVar(&fo.maxAge, "max-age", 0, "IMAP source: copy only messages younger than this (e.g. 720h); 0 = all")
	fs.DurationVar(&fo.minAge, "min-age", 0, "IMAP source: copy only messages older than this; 0 = all")
}

// imapJobOptions sets what an IMAP source needs in the pipeline options:
// folder mapping, flag sync, and rematching after a UIDVALIDITY change.
func imapJobOptions(popts *pipeline.Options, fo folderOptions, log *slog.Logger) {
	popts.MapFolders = imapFolderMapper(fo, log)
	popts.SyncFlags = fo.syncFlags
	popts.SameOrigin = sameIMAPOrigin
}

// policyFlags are the per-message policies, shared with `run` overrides.
type policyFlags struct {
	internalDate   string
	flags          string
	maxMessageSize string
	spoolMemory    string
	batchMessages  int
	batchBytes     string
	idleTimeout    time.Duration
	attempts       int
	xUIDL          bool
	destSessions   int
}

func (p *policyFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&p.internalDate, "internal-date", "received", "internal date for POP3 mail: received (newest Received: header, then Date:, then now), date, or now")
	fs.StringVar(&p.flags, "flags", "none", "flags for POP3 mail: none, seen, or status (from mbox Status:/X-Status: headers)")
	fs.StringVar(&p.maxMessageSize, "max-message-size", "0", "skip and report messages larger than this (e.g. 50MB); 0 = only the server's APPENDLIMIT")
	fs.StringVar(&p.spoolMemory, "spool-memory", "8MB", "messages up to this size are held in memory, larger ones in a private temp file")
	fs.IntVar(&p.batchMessages, "batch-messages", 50, "messages per APPEND batch (MULTIAPPEND) and per checkpoint commit")
	fs.StringVar(&p.batchBytes, "batch-bytes", "16MB", "bytes per APPEND batch")
	fs.DurationVar(&p.idleTimeout, "idle-timeout", 2*time.Minute, "fail a connection that makes no progress for this long")
	fs.IntVar(&p.destSessions, "dest-sessions", 2, "destination sessions appending at once per account (each uses 2 connections)")
	fs.IntVar(&p.attempts, "attempts", 4, "tries per account when connections drop or servers are unavailable")
	fs.BoolVar(&p.xUIDL, "x-uidl", false, "POP3 source: put \"X-UIDL: <original UIDL>\" before each message (for Dovecot's pop3_reuse_xuidl; changes the bytes)")
}

// pipelineOptions turns the flags into pipeline options for one account.
func (p *policyFlags) pipelineOptions() (pipeline.Options, error) {
	var o pipeline.Options
	var err error
	if o.DatePolicy, err = mapping.ParseDatePolicy(p.internalDate); err != nil {
		return o, usagef("--internal-date: %v", err)
	}
	if o.FlagPolicy, err = mapping.ParseFlagPolicy(p.flags); err != nil {
		return o, usagef("--flags: %v", err)
	}
	if o.MaxMessageBytes, err = config.ParseByteSize(p.maxMessageSize); err != nil {
		return o, usagef("--max-message-size: %v", err)
	}
	mem, err := config.ParseByteSize(p.spoolMemory)
	if err != nil {
		return o, usagef("--spool-memory: %v", err)
	}
	o.Spool = spool.Options{MemoryBytes: mem, Buffers: &spool.Buffers{}}
	if o.BatchBytes, err = config.ParseByteSize(p.batchBytes); err != nil {
		return o, usagef("--batch-bytes: %v", err)
	}
	if p.batchMessages < 1 {
		return o, usagef("--batch-messages must be at least 1")
	}
	if p.destSessions < 1 || p.destSessions > 8 {
		return o, usagef("--dest-sessions must be from 1 to 8")
	}
	o.DestSessions = p.destSessions
	o.BatchMessages = p.batchMessages
	return o, nil
}

func runCopy(ctx context.Context, args []string, e *env) (int, error) {
	o := copyOptions{srcPassword: passwordFlags{side: "source"}, dstPassword: passwordFlags{side: "dest"}}
	fs := pflag.NewFlagSet("copy", pflag.ContinueOnError)
	o.common.register(fs)
	o.policy.register(fs)
	o.folders.register(fs)
	fs.StringVar(&o.srcPassword.file, "source-password-file", "", "read the source password from the first line of this file")
	fs.StringVar(&o.srcPassword.command, "source-password-command", "", "run this shell command; its first output line is the source password")
	fs.StringVar(&o.dstPassword.file, "dest-password-file", "", "read the destination password from the first line of this file")
	fs.StringVar(&o.dstPassword.command, "dest-password-command", "", "run this shell command; its first output line is the destination password")
	fs.StringToStringVar(&o.srcOAuth2, "source-oauth2", nil, "log in to the source with OAuth2 tokens from a grant: the oauth2 keys of a config, e.g. grant=client-credentials,tenant=T,client_id=ID,client_secret_env=VAR")
	fs.StringToStringVar(&o.dstOAuth2, "dest-oauth2", nil, "log in to the destination with OAuth2 tokens from a grant, e.g. grant=service-account,key_file=sa.json")
	if done, err := parseFlags(fs, args, e, copyHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if err := o.common.check(); err != nil {
		return exitUsage, err
	}
	if fs.NArg() != 2 {
		return exitUsage, usagef("want a SOURCE and a DEST URL, got %d arguments", fs.NArg())
	}
	srcEp, err := config.ParseURL(fs.Arg(0))
	if err != nil {
		return exitUsage, usagef("SOURCE: %v", err)
	}
	dstEp, err := config.ParseURL(fs.Arg(1))
	if err != nil {
		return exitUsage, usagef("DEST: %v", err)
	}
	if srcEp.User == "" || dstEp.User == "" {
		return exitUsage, usagef("both URLs need a user name (pop3s://USER@host, imaps://USER@host)")
	}
	if srcEp.Protocol == config.IMAP {
		// The destination path is where the source's folders go: under it,
		// or (no path) at the top, mapped folder by folder.
		o.folders.root = dstEp.Mailbox
		if o.folders.minAge > 0 && o.folders.maxAge > 0 && o.folders.minAge >= o.folders.maxAge {
			return exitUsage, usagef("--min-age must be less than --max-age: nothing would be copied")
		}
	} else if dstEp.Mailbox == "" {
		dstEp.Mailbox = "INBOX"
	}
	popts, err := o.policy.pipelineOptions()
	if err != nil {
		return exitUsage, err
	}
	popts.Account = accountKey(srcEp, dstEp)
	popts.Mailbox = mapping.DestFolder(dstEp.Mailbox)
	popts.DeleteSource, popts.DeleteAfter = o.common.deleteSource, o.common.deleteAfter
	if popts.Crashpoint, err = crashpointFromEnv(e.getenv); err != nil {
		return exitUsage, err
	}
	if popts.Now, err = testNowFromEnv(e.getenv); err != nil {
		return exitUsage, err
	}

	logOut := &logWriter{w: e.stderr}
	log := newLogger(&o.common, logOut)
	var logins oauthLogins
	srcLogin, err := oauth2FlagLogin(&logins, "--source-oauth2", fs.Arg(0), srcEp.User, o.srcOAuth2, log)
	if err != nil {
		return exitUsage, err
	}
	dstLogin, err := oauth2FlagLogin(&logins, "--dest-oauth2", fs.Arg(1), dstEp.User, o.dstOAuth2, log)
	if err != nil {
		return exitUsage, err
	}
	var srcPw, dstPw secret.Value
	if srcLogin == nil {
		if srcPw, err = o.srcPassword.resolve(ctx, e, srcEp.String()); err != nil {
			return exitUsage, err
		}
	}
	if dstLogin == nil {
		if dstPw, err = o.dstPassword.resolve(ctx, e, dstEp.String()); err != nil {
			return exitUsage, err
		}
	}
	state := o.common.state
	if state == "" {
		if state, err = defaultStatePath(e.getenv); err != nil {
			return exitUsage, err
		}
	}
	trace := traceWriter(&o.common, e)
	src := serverSetup{ep: srcEp, password: srcPw, tlsCA: o.common.tlsCA, insecure: o.common.insecureSkipVerify,
		allowPlaintext: o.common.allowPlaintext, idleTimeout: o.policy.idleTimeout, log: log, trace: trace,
		folders: o.folders}
	src.auth = srcEp.Auth
	src.passwordFunc = o.srcPassword.tokenFunc(srcEp.Auth, e, "source token", log)
	dst := src
	dst.ep, dst.password, dst.auth = dstEp, dstPw, dstEp.Auth
	dst.passwordFunc = o.dstPassword.tokenFunc(dstEp.Auth, e, "destination token", log)
	srcLogin.use(&src)
	dstLogin.use(&dst)
	if srcEp.Protocol == config.IMAP {
		imapJobOptions(&popts, o.folders, log)
	}
	if o.policy.xUIDL {
		if srcEp.Protocol != config.POP3 {
			return exitUsage, usagef("--x-uidl needs a POP3 source: IMAP messages have no UIDL")
		}
		popts.AddHeader = xUIDLHeader
	}
	job := pipeline.Job{Options: popts}
	if job.OpenSource, err = src.openSource(); err != nil {
		return exitUsage, err
	}
	bb := popts.BatchBytes
	if job.OpenDestination, err = dst.openDestination(popts.BatchMessages, bb); err != nil {
		return exitUsage, err
	}
	if o.common.insecureSkipVerify {
		log.Warn("TLS certificates are not verified (--insecure-skip-verify)")
	}
	x := &execution{command: "copy", opts: &o.common, env: e, log: log, logOut: logOut, state: state, workers: 1,
		attempts: o.policy.attempts}
	return x.run(ctx, []pipeline.Job{job})
}

func isConfigError(err error) bool {
	var ce *config.ConfigError
	return errors.As(err, &ce)
}

// xUIDLHeader is the X-UIDL field for a POP3 message, "" when the server
// gave it no UIDL (RFC 1939 §7: a UIDL is 1 to 70 printable characters).
func xUIDLHeader(m pipeline.SourceMessage) string {
	uidl, ok := pop3src.UIDLOfKey(m.Key)
	if !ok || strings.ContainsAny(uidl, "\r\n") {
		return ""
	}
	return "X-UIDL: " + uidl + "\r\n"
}
