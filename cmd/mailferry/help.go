package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

const exitStatusHelp = `EXIT STATUS
  0    everything was moved, or there was nothing to do (accounts paused on
       purpose, by an admin, a daily quota or a timetable, are listed in the
       summary and do not change the status)
  1    a fatal error: wrong password, server unreachable, checkpoint unwritable
  2    bad command line or configuration (a folder it names that is not
       there included); nothing was touched
  3    partial: some messages or accounts could not be moved (the report says
       which and why); run again to retry what failed. A mirror pass also
       exits 3 when it held removals back (over the cap, or a folder that
       cannot tell)
  130  interrupted; run again to resume
`

const mainHelp = `mailferry - move mail from POP3 and IMAP mailboxes into IMAP servers

USAGE
  mailferry copy SOURCE DEST [flags]    copy one mailbox
  mailferry run -c migrate.toml [flags] copy every account of a config file
  mailferry plan -c migrate.toml        what a run would do, writing nothing
  mailferry verify SOURCE DEST | -c FILE compare source and destination per message
  mailferry status [-c FILE | --state FILE] what the checkpoint knows
                                        (--serve: as a web page)
  mailferry queue add|pause|resume|retry|drain  operate a migration:
                                        accounts, a fleet's workers
  mailferry report -c FILE [--format csv|json] one row per message
  mailferry login -c migrate.toml       sign in once for device-grant accounts
  mailferry config check -c FILE        validate a config file, connect to nothing
  mailferry ledger migrate --from A --to B copy a checkpoint (SQLite <-> PostgreSQL)
  mailferry ledger upgrade --state STATE  upgrade a checkpoint to this version's schema
  mailferry version                     version, commit, Go version, build date
  mailferry completion bash|zsh|fish    a shell completion script
  mailferry help COMMAND | --man        a command's help, or the man page

mailferry copies each message byte for byte (the only change is the one IMAP
forces: bare LF or CR becomes CRLF, and each is counted), keeps internal dates,
and records its progress in a checkpoint file, so that a run that is stopped
at any point resumes without losing or duplicating a message, and a second
run copies only what is new.

EXAMPLES
  export MAILFERRY_SOURCE_PASSWORD=... MAILFERRY_DEST_PASSWORD=...
  mailferry copy pop3s://alice@pop.old.example imaps://alice@imap.new.example
  mailferry run -c migrate.toml --dry-run

` + exitStatusHelp

const copyHelp = `mailferry copy - copy one mailbox

USAGE
  mailferry copy SOURCE DEST [flags]

SOURCE is a POP3 mailbox or an IMAP account:
  pop3s://USER@HOST[:PORT]            implicit TLS (port 995)
  pop3://USER@HOST[:PORT]             STLS upgrade required (port 110)
  imaps://USER@HOST[:PORT][/Folder]   implicit TLS (port 993); only Folder if given
  imap://USER@HOST[:PORT][/Folder]    STARTTLS required (port 143)
DEST is an IMAP server, optionally with a folder:
  imaps://USER@HOST[:PORT][/Folder]   implicit TLS (port 993)
  imap://USER@HOST[:PORT][/Folder]    STARTTLS required (port 143)
POP3 mail goes into Folder (default INBOX). IMAP folders keep their names and
hierarchy (separators and namespace prefixes translated; Sent, Drafts, Trash,
Junk and Archive go to the destination's folders of the same role, also when
they are named in another language), under Folder when one is given.
Folders you name must be right: a source folder named in SOURCE or by
--folder without wildcards must exist, and DEST's Folder may be a new
top-level folder only with --create-folders; otherwise copy exits 2 before
touching anything and names the nearest existing folders (a typo such as INBX
never becomes a folder). The summary names every folder the copy created.
Add ?tls=none to a pop3:// or imap:// URL to use no TLS at all (with
--allow-plaintext). Add ?auth=plain for SASL PLAIN, or ?auth=xoauth2 or
?auth=oauthbearer to log in with an OAuth2 bearer token given as the password
(from a file or command it is read again for every connection). A user name
containing @ is written %40.

PASSWORDS
  Never on the command line. Each side takes exactly one of:
  MAILFERRY_SOURCE_PASSWORD / MAILFERRY_DEST_PASSWORD,
  --source-password-file / --dest-password-file (first line), or
  --source-password-command / --dest-password-command (first line of its
  output); two for one side are refused. With none, a prompt when stdin is a
  terminal.

OAUTH2 GRANTS
  --source-oauth2 KEY=VALUE,... and --dest-oauth2 KEY=VALUE,... log a side in
  with OAuth2 tokens that mailferry obtains itself, with the keys of a
  config's oauth2 table (no password is asked for then):
    --dest-oauth2 grant=service-account,key_file=sa.json
    --source-oauth2 grant=client-credentials,tenant=TENANT,client_id=ID,client_secret_env=VAR
    --source-oauth2 grant=refresh-token,token_url=URL,client_id=ID,token_file=FILE
  For imap.gmail.com and outlook.office365.com the token endpoints and scopes
  are filled in. Tokens are cached, refreshed before they expire, and fetched
  anew when a server rejects one. See docs/oauth2.md.

WHAT HAPPENS
  Every message of SOURCE not yet recorded in the checkpoint is fetched,
  appended to DEST (in MULTIAPPEND batches where the server offers them) with
  its internal date (and, from IMAP, its flags and keywords), and recorded.
  Later runs copy only what is new and, for IMAP sources, bring changed flags
  up to date. Messages that cannot be copied (NUL bytes,
  larger than the server's APPENDLIMIT or --max-message-size) are skipped and
  listed in the summary. By default the source is left as it is. With
  --delete-source, a message is deleted at the source only after the
  destination confirmed it and the checkpoint recorded it; with
  --delete-after 30d, by the first run at least 30 days after that (the
  summary counts the messages still waiting). Progress goes to stderr; the
  summary (or with --json, a JSON report) to stdout. Every flag can also be
  set as an environment variable spelled like it: --dry-run is
  MAILFERRY_DRY_RUN=true.

FLAGS
  --state FILE              checkpoint file (default
                            $XDG_STATE_HOME/mailferry/mailferry.db)
  --tls-ca FILE             trust the CA certificates in this PEM file too
  --insecure-skip-verify    do not verify certificates (dangerous)
  --allow-plaintext         allow passwords over connections without TLS
  --dry-run                 read the source and checkpoint, write nothing
  --delete-source           delete copied messages at the source
  --delete-after DURATION   delete copied messages at the source this long
                            after they were copied (e.g. 30d; days, h, m);
                            excludes --delete-source
  --mirror                  delta pass: remove from DEST the copies of
                            messages deleted at SOURCE, move those of
                            messages moved between folders (docs/mirror.md)
  --max-delete N            with --mirror: a pass that would remove more
                            copies removes none and exits 3 (default 10% of
                            the copied messages, at least 50)
  --max-delete-percent P    the same cap as a percentage of the copied
                            messages; with --max-delete the smaller wins
  --mirror-allow-empty FOLDER
                            with --mirror: FOLDER was emptied at SOURCE on
                            purpose; remove its copies within the caps
                            instead of 'cannot tell' (repeatable)
  --internal-date POLICY    received (default: newest Received: header, then
                            Date:, then now), date (Date:, then now), or now
  --flags POLICY            none (default), seen, or status (mbox Status: and
                            X-Status: headers)
  --max-message-size SIZE   skip larger messages (e.g. 50MB; default no limit
                            beyond the server's APPENDLIMIT)
  --batch-messages N        messages per APPEND batch and commit (default 250)
  --batch-bytes SIZE        bytes per APPEND batch (default 16MiB)
  --dest-sessions N         destination sessions appending at once (default 2;
                            each uses 2 connections)
  --spool-memory SIZE       keep messages up to SIZE in memory, larger ones in
                            a private temp file (default 8MiB)
  --idle-timeout DURATION   fail a connection idle this long (default 2m)
  --connect-timeout, --tls-timeout, --greeting-timeout DURATION
                            give up on the TCP connect, the TLS handshake, or
                            a server that sends no greeting, after this long
                            (default 30s each); a closed port or a server
                            speaking another protocol fails at once
  --create-folders          create DEST's Folder when it is a new top-level
                            folder (folders mapped from an IMAP source are
                            always created)
  --folder PATTERN          IMAP source: only these folders (* any, % one
                            level, ? one character; repeatable)
  --exclude-folder PATTERN  IMAP source: not these folders (wins)
  --max-age, --min-age D    IMAP source: only messages younger / older than D
                            (e.g. 30d, 1d12h, 90m)
  --sync-flags=false        IMAP source: do not update flags of earlier copies
  --special-use=false       IMAP source: no mapping of folders by role
  --gmail-labels MODE       Gmail source: one-copy (default: each message once,
                            in one label's folder, the other labels as
                            keywords) or per-label (a copy in every label's
                            folder)
  --retry-skipped           send again the messages earlier runs skipped for
                            good (too big, NUL bytes without BINARY, refused
                            for good), after you changed what stopped them
  --no-match-existing       do not match what a destination folder unknown to
                            the checkpoint holds: send every message, even
                            those whose exact bytes are there
  --attempts N              tries in a row per account on dropped connections or
                            throttling without progress (default 4)
  --retry-backoff DURATION  first wait before a retry, doubling (default 2s); a
                            server's suggested wait wins
  --x-uidl                  POP3 source: put "X-UIDL: <original UIDL>" before each
                            message, so a Dovecot destination with
                            pop3_reuse_xuidl keeps the old UIDLs (POP3 clients
                            then download nothing again); changes the bytes
  --json                    print a JSON report on stdout
  --report FILE             also write the JSON report to FILE
  --progress MODE           auto (default), bar, lines or none
  --on-locked ACTION        another run is working on the account (overlapping
                            cron runs): fail (default), skip, or wait
  --lock-wait DURATION      with --on-locked wait: how long (default 10m)
  -q, --quiet               only warnings and errors
  -v, --verbose             debug logging
  --log-format FORMAT       text (default) or json
  --trace                   log protocol lines (passwords redacted)
  --source-password-file FILE, --source-password-command CMD
  --dest-password-file FILE, --dest-password-command CMD

TRAFFIC CONTROL (docs/traffic-control.md)
  --bwlimit-read RATE       bytes per second read from the source (2M = 2 MB/s)
  --bwlimit-write RATE      bytes per second written to the destination
  --max-messages-per-second RATE  messages fetched per second (e.g. 10, 0.5)
                            Each RATE is a rate, off, or a weekly timetable:
                            "Mon-Fri 08:00,2M 18:00,off Sat-Sun off"; pause in
                            a timetable stops new batches (what is in flight
                            finishes) and the copy goes on when it ends
  --max-bytes-per-day SIZE  daily quota of bytes read and of bytes written; when
                            reached the account pauses until the next day
                            (exit status unchanged); off: none
  --max-bytes-per-day-read SIZE, --max-bytes-per-day-write SIZE
                            one side's quota (Gmail: 2500MB read and 500MB
                            written unless set)
  --max-connections-per-user N  connections of one user to a server at once
                            (default: Gmail 15, Microsoft 365 20, else none); a
                            server refusing "too many connections" lowers it
  --timezone ZONE           zone of timetables and quota days (e.g.
                            Europe/Berlin; default local time)

EXAMPLES
  # Alice's POP3 mail into her new IMAP INBOX:
  mailferry copy pop3s://alice@pop.old.example imaps://alice@imap.new.example

  # Into a new folder, marking everything read, with a private CA:
  mailferry copy pop3://alice@pop.old.example \
      'imaps://alice%40new.example@imap.new.example/Old Mail' \
      --create-folders --flags seen --tls-ca corp-ca.pem

  # A whole IMAP account, folders and flags, except Spam, under "Old":
  mailferry copy imaps://bob@old.example imaps://bob@new.example/Old \
      --create-folders --exclude-folder Spam

  # Move (copy, then delete at the source):
  mailferry copy pop3s://bob@pop.old.example imaps://bob@imap.new.example --delete-source

` + exitStatusHelp

const runHelp = `mailferry run - copy every account of a config file

USAGE
  mailferry run -c migrate.toml [flags]

The config file names the source and destination servers and the accounts
([[account]] tables or an accounts_file CSV); see migrate.toml.example.
Accounts run in parallel (workers); one account's failure never stops the
others. Flags given on the command line win over the file.

FLAGS
  -c, --config FILE         the config file (required)
  --only NAME[,NAME...]     run only these accounts
  --rerun-failed            run only the accounts whose last run failed, was
                            interrupted, or left messages failed
  --retry-skipped           send again the messages earlier runs skipped for
                            good (by default they are listed, exit 0)
  --no-match-existing       as for copy: send every message the checkpoint does
                            not know (the file's match_existing = false)
  --workers N               accounts in parallel (default: the file's workers)
  --attempts N              tries per account on dropped connections (default 4)
  --retry-backoff DURATION  first wait before a retry, doubling (default 2s); a
                            server's suggested wait wins
  --state FILE              checkpoint file (default: the file's state)
  --tls-ca FILE, --insecure-skip-verify, --allow-plaintext
  --create-folders          create a new top-level destination folder the
                            config names (replaces create_folders)
  --dry-run, --delete-source, --json, --report FILE, --progress MODE
  --delete-after DURATION   delete at the source this long after copying;
                            like --delete-source, it replaces every
                            account's delete_source/delete_after
  --mirror                  delta pass: remove and move copies as messages
                            were deleted and moved at the source; replaces
                            every account's mirror key (docs/mirror.md)
  --max-delete N, --max-delete-percent P
                            caps of one mirror pass's removals per account
                            (default 10%, at least 50): over them, nothing
                            is removed and the run exits 3
  --mirror-allow-empty FOLDER
                            a source folder emptied on purpose: its copies
                            are removed within the caps (repeatable; adds
                            to every account's mirror_allow_empty)
  --on-locked fail|skip|wait, --lock-wait DURATION (cron: use skip or wait)
  -q, --quiet, -v, --verbose, --log-format FORMAT, --trace

TRAFFIC CONTROL (docs/traffic-control.md)
  --bwlimit-read RATE, --bwlimit-write RATE, --max-messages-per-second RATE
                            each account's bandwidth and message rate: a
                            rate (2M, 10), off, or a weekly timetable
                            ("Mon-Fri 08:00,2M 18:00,off Sat-Sun off"; pause
                            stops new batches until it ends)
  --bwlimit-read-total RATE, --bwlimit-write-total RATE,
  --max-messages-per-second-total RATE
                            the same for the whole run, shared by its accounts
  --max-bytes-per-day SIZE, --max-bytes-per-day-read SIZE,
  --max-bytes-per-day-write SIZE
                            each account's daily quota; when reached the
                            account pauses until the next day and the run
                            goes on with the others (exit status unchanged)
  --max-connections-per-user N  connections of one user to a server at once
                            (default: the file's, else Gmail 15, Microsoft
                            365 20); a refusal for too many lowers it
  --max-connections-total N the whole run's connections at once
  --timezone ZONE           zone of timetables and quota days (default: the
                            file's timezone, else local time)

SERVICE MODE
  --every DURATION          do not exit: poll each account at this interval
                            (every = "2m" in the file), each on its own
                            schedule with ±10% jitter, at most --workers at
                            once; after failed polls an account waits
                            2x, 4x, 8x... the interval (at most 1h, or the
                            interval if longer) without delaying the others
  --idle=false              IMAP sources: no IDLE on INBOX between polls (by
                            default new mail announced by IDLE is fetched at
                            once; servers without IDLE are polled only)
  --metrics-addr HOST:PORT  serve Prometheus metrics at /metrics (keep it on
                            127.0.0.1 or a private network: no auth, no TLS)
  SIGTERM or SIGINT stops starting polls, lets the batches in flight commit
  and exits 0. The config file is read once, at start; after editing it,
  restart the service (nothing is reloaded silently). In service mode
  --attempts defaults to 1: the next poll is the retry. 'mailferry status'
  shows each account's last successful poll and last error.

STATUS PAGE AND NOTIFICATIONS (docs/status-page.md)
  --ui-addr HOST:PORT       serve a live status page at http://HOST:PORT/
                            while the run goes on (ui_addr; a port alone
                            means 127.0.0.1): accounts, progress, errors with
                            their fix, a chart, the per-message report.
                            Beyond loopback it needs a token for reading too.
  --ui-actions              let the page pause, resume and retry accounts
                            (ui_actions); needs the token
  --ui-token-file FILE      the token: the first line of FILE (ui_token_file;
                            or MAILFERRY_UI_TOKEN), at least 16 characters
  notify_webhook = URL and notify_command = CMD in the file get a JSON event
  when an account fails and when the run ends (never holding up the copy).
  Accounts paused on the page are not started ('paused' in the report, exit
  3); a retry makes their failed and skipped messages be tried again by the
  next run (--rerun-failed includes them; a service polls them at once).

EXAMPLES
  mailferry config check -c migrate.toml
  mailferry run -c migrate.toml --dry-run
  mailferry run -c migrate.toml --report report.json
  mailferry run -c fetch.toml --every 2m --metrics-addr 127.0.0.1:9464
  mailferry run -c migrate.toml --ui-addr 127.0.0.1:8080
  mailferry run -c fetch.toml --on-locked skip -q     # from cron

` + exitStatusHelp

const configHelp = `mailferry config check - validate a config file

USAGE
  mailferry config check -c migrate.toml

Loads the file strictly (unknown keys, wrong types and bad durations are
errors naming the key and line) and checks URLs, accounts and password
settings. It connects to nothing and runs no password command.

FLAGS
  -c, --config FILE         the config file (required)

EXIT STATUS
  0    the file is valid
  2    bad command line, or the file is not valid (the error names the key
       and line); nothing was touched
`

// command is one subcommand as the help command, the man page and the
// completion scripts know it.
type command struct {
	name string   // as typed: "copy", "config check"
	help string   // its --help text
	args []string // the arguments that reach its flag set
}

// commands lists the subcommands in the order the man page shows them. A
// test checks that each one's --help prints its help text.
func commands() []command {
	return []command{
		{"copy", copyHelp, []string{"copy"}},
		{"run", runHelp, []string{"run"}},
		{"plan", planHelp, []string{"plan"}},
		{"verify", verifyHelp, []string{"verify"}},
		{"status", statusHelp, []string{"status"}},
		{"queue", queueHelp, []string{"queue"}},
		{"report", reportHelp, []string{"report"}},
		{"login", loginHelp, []string{"login"}},
		{"config check", configHelp, []string{"config", "check"}},
		{"ledger migrate", ledgerHelp, []string{"ledger", "migrate"}},
		{"ledger upgrade", ledgerUpgradeHelp, []string{"ledger", "upgrade"}},
		{"version", versionHelp, []string{"version"}},
		{"completion", completionHelp, []string{"completion"}},
	}
}

// summary is what follows "mailferry X - " on the help text's first line.
func (c command) summary() string {
	first, _, _ := strings.Cut(c.help, "\n")
	_, s, _ := strings.Cut(first, " - ")
	return s
}

// runHelpCmd is 'mailferry help [COMMAND | --man]'.
func runHelpCmd(ctx context.Context, args []string, e *env) (int, error) {
	switch {
	case len(args) == 0 || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(e.stdout, mainHelp)
		return exitOK, nil
	case args[0] == "--man":
		if len(args) > 1 {
			return exitUsage, usagef("--man takes no arguments, got %q", args[1:])
		}
		fmt.Fprint(e.stdout, manPage())
		return exitOK, nil
	}
	cmd := args[:1:1]
	if len(args) > 1 && slices.ContainsFunc(commands(), func(c command) bool { return len(c.args) == 2 && c.args[0] == args[0] && c.args[1] == args[1] }) {
		cmd = args[:2:2] // help ledger upgrade
	}
	return run(ctx, append(cmd, "--help"), e), nil
}
