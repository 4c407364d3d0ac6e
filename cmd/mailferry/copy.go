package main

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
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
	folders              config.Folders
	traffic              trafficFlags
}

// registerFolderFlags adds the flags for IMAP sources: the config's
// [folders] section on the command line.
func registerFolderFlags(fs *pflag.FlagSet, fo *config.Folders) {
	fs.StringSliceVar(&fo.Include, "folder", nil, "IMAP source: copy only these folders (names or patterns: * any, % one level, ? one character; repeat or separate with commas)")
	fs.StringSliceVar(&fo.Exclude, "exclude-folder", nil, "IMAP source: do not copy these folders (patterns as for --folder; wins over --folder)")
	fs.BoolVar(&fo.SyncFlags, "sync-flags", true, "IMAP source: bring the flags of messages copied earlier up to date")
	fs.BoolVar(&fo.SpecialUse, "special-use", true, "IMAP source: map Sent, Drafts, Trash, Junk and Archive to the destination's folders of the same role")
	fs.Var((*daysDuration)(&fo.MaxAge), "max-age", "IMAP source: copy only messages younger than this (e.g. 30d, 720h); 0 = all")
	fs.Var((*daysDuration)(&fo.MinAge), "min-age", "IMAP source: copy only messages older than this (e.g. 7d); 0 = all")
	fs.StringVar(&fo.GmailLabels, "gmail-labels", config.GmailOneCopy, "Gmail source: one-copy (each message once, in the folder of one label, the others as keywords) or per-label (a copy in every label's folder)")
}

// checkFolderFlags refuses a malformed folder pattern or label mode
// before anything connects.
func checkFolderFlags(fo *config.Folders) error {
	if _, err := imapsrc.ParseLabelMode(fo.GmailLabels); err != nil {
		return usagef("--gmail-labels: %v", err)
	}
	for _, f := range []struct {
		flag     string
		patterns []string
	}{{"--folder", fo.Include}, {"--exclude-folder", fo.Exclude}} {
		for _, p := range f.patterns {
			if err := mapping.CheckFolderPattern(p); err != nil {
				return usagef("%s: %v", f.flag, err)
			}
		}
	}
	return nil
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
	timeouts       dialer.Timeouts
	attempts       int
	xUIDL          bool
	destSessions   int
}

func (p *policyFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&p.internalDate, "internal-date", "received", "internal date for POP3 mail: received (newest Received: header, then Date:, then now), date, or now")
	fs.StringVar(&p.flags, "flags", "none", "flags for POP3 mail: none, seen, or status (from mbox Status:/X-Status: headers)")
	fs.StringVar(&p.maxMessageSize, "max-message-size", "0", "skip and report messages larger than this (e.g. 50MB); 0 = only the server's APPENDLIMIT")
	fs.StringVar(&p.spoolMemory, "spool-memory", "8MiB", "messages up to this size are held in memory, larger ones in a private temp file")
	fs.IntVar(&p.batchMessages, "batch-messages", pipeline.DefaultBatchMessages, "messages per APPEND batch (MULTIAPPEND) and per checkpoint commit")
	fs.StringVar(&p.batchBytes, "batch-bytes", "16MiB", "bytes per APPEND batch")
	fs.DurationVar(&p.idleTimeout, "idle-timeout", 2*time.Minute, "fail a connection that makes no progress for this long")
	fs.DurationVar(&p.timeouts.Connect, "connect-timeout", dialer.DefaultTimeout, "give up on a TCP connect after this long")
	fs.DurationVar(&p.timeouts.TLS, "tls-timeout", dialer.DefaultTimeout, "give up on a TLS handshake after this long")
	fs.DurationVar(&p.timeouts.Greeting, "greeting-timeout", dialer.DefaultTimeout, "give up on a server that sends no greeting this long after the connection is up")
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
	o.traffic.register(fs, false)
	registerFolderFlags(fs, &o.folders)
	noteCreateFolders := o.common.registerCreateFolders(fs)
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
	if err := checkFolderFlags(&o.folders); err != nil {
		return exitUsage, err
	}
	if err := o.traffic.check(); err != nil {
		return exitUsage, err
	}
	if fs.NArg() != 2 {
		return exitUsage, usagef("want a SOURCE and a DEST URL, got %s", plural(fs.NArg(), "argument"))
	}
	u, err := parseURLs(fs.Arg(0), fs.Arg(1))
	if err != nil {
		return exitUsage, err
	}
	if u.Source.Protocol == config.IMAP && o.folders.MinAge > 0 && o.folders.MaxAge > 0 && o.folders.MinAge >= o.folders.MaxAge {
		return exitUsage, usagef("--min-age must be less than --max-age: nothing would be copied")
	}
	if u.Options, err = o.policy.pipelineOptions(); err != nil {
		return exitUsage, err
	}
	u.Options.DeleteSource, u.Options.DeleteAfter = o.common.deleteSource, o.common.deleteAfter
	u.Options.Mirror, u.Options.MaxDelete, u.Options.MaxDeletePercent = o.common.mirror, o.common.maxDelete, o.common.maxDeletePercent
	u.Options.MirrorAllowEmpty = o.common.mirrorAllowEmpty
	u.Options.RetrySkipped = o.common.retrySkipped
	u.Options.NoMatchExisting = o.common.noMatchExisting
	u.Folders, u.XUIDL, u.IdleTimeout, u.Timeouts = o.folders, o.policy.xUIDL, o.policy.idleTimeout, o.policy.timeouts
	noteCreateFolders()
	u.CreateFolders = o.common.createFolders != nil && *o.common.createFolders

	logOut := &logWriter{w: e.stderr}
	log := newLogger(&o.common, logOut)
	if u.SourceLogin, err = o.srcPassword.loginOrOAuth2(e, u.Source.String(), fs.Arg(0), o.srcOAuth2); err != nil {
		return exitUsage, err
	}
	if u.DestLogin, err = o.dstPassword.loginOrOAuth2(e, u.Dest.String(), fs.Arg(1), o.dstOAuth2); err != nil {
		return exitUsage, err
	}
	state := o.common.state
	if state == "" {
		if state, err = defaultStatePath(e.getenv); err != nil {
			return exitUsage, err
		}
	}
	aopts := o.common.accountOptions(e, log)
	if err := o.traffic.apply(&aopts, nil, e, log); err != nil {
		return exitUsage, err
	}
	set := account.NewSet(aopts)
	acc, err := set.FromURLs(u)
	if err != nil {
		return exitUsage, err
	}
	if err := e.applyTestHooks(&acc.Options); err != nil {
		return exitUsage, err
	}
	x := &execution{command: "copy", opts: &o.common, env: e, log: log, logOut: logOut, state: state, workers: 1,
		attempts: o.policy.attempts, set: set}
	return x.run(ctx, []pipeline.Job{acc.Job()}, []checkpoint.AccountSpec{acc.LedgerSpec()})
}

// parseURLs parses the SOURCE and DEST arguments.
func parseURLs(source, dest string) (account.URLs, error) {
	var u account.URLs
	var err error
	if u.Source, err = config.ParseURL(source); err != nil {
		return u, usagef("SOURCE: %v", err)
	}
	if u.Dest, err = config.ParseURL(dest); err != nil {
		return u, usagef("DEST: %v", err)
	}
	if u.Source.User == "" || u.Dest.User == "" {
		// Before any password prompt.
		return u, usagef("both URLs need a user name (pop3s://USER@host, imaps://USER@host)")
	}
	return u, nil
}

func isConfigError(err error) bool {
	var ce *config.ConfigError
	return errors.As(err, &ce)
}
