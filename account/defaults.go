package account

import (
	"time"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/spool"
)

// CopyDefaults returns the settings of `mailferry copy SOURCE DEST` with
// no flag changing them, in the URLs it builds: the per-message policies
// (--internal-date received, --flags none), --spool-memory 8MiB,
// --batch-messages 250, --batch-bytes 16MiB, --dest-sessions 2, the folder
// flags (--sync-flags, --special-use, --gmail-labels one-copy),
// --idle-timeout 2m and the dial timeouts. The caller sets Source, Dest
// and the logins. cmd/mailferry's TestCopyDefaultsAreTheFlags holds them
// to its flags' defaults; the bench's in-process profile copies with
// them, so that its profile is of what users run.
func CopyDefaults() URLs {
	return URLs{
		Options: pipeline.Options{
			DatePolicy: mapping.DateReceived,
			FlagPolicy: mapping.FlagsNone,
			// The config file's defaults too (8 MiB, 16 MiB).
			Spool:         spool.Options{MemoryBytes: config.DefaultSpoolMemoryBytes, Buffers: &spool.Buffers{}},
			BatchMessages: pipeline.DefaultBatchMessages,
			BatchBytes:    pipeline.DefaultBatchBytes,
			DestSessions:  2,
		},
		Folders:     config.Folders{SyncFlags: true, SpecialUse: true, GmailLabels: config.GmailOneCopy},
		IdleTimeout: 2 * time.Minute,
		Timeouts:    dialer.Timeouts{Connect: dialer.DefaultTimeout, TLS: dialer.DefaultTimeout, Greeting: dialer.DefaultTimeout},
	}
}
