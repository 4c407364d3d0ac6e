package pipeline

// Outcome is what happened to one message.
type Outcome int

const (
	OutcomeCopied  Outcome = iota + 1 // appended and committed
	OutcomeSkipped                    // not copied, with a reason recorded
	OutcomeFound                      // an interrupted run had copied it (reconciled)
)

// Progress receives events while accounts run. It carries data, not
// formatting, and may be called from several goroutines at once.
type Progress interface {
	// AccountStarted is called as the source is listed, page by page:
	// toCopy messages are known so far to remain to be copied, and the
	// messages to copy found so far announce toCopyBytes. Each call
	// replaces what the last one said (a retry lists again from the
	// start).
	AccountStarted(account string, toCopy int, toCopyBytes int64)
	// MessageDone is called for each message that reached an outcome.
	MessageDone(account string, outcome Outcome, bytes int64)
	// AccountFinished is called when an account's run ends, with its stats.
	AccountFinished(account string, stats *Stats)
}

type nopProgress struct{}

func (nopProgress) AccountStarted(string, int, int64)        {}
func (nopProgress) MessageDone(string, Outcome, int64)       {}
func (nopProgress) AccountFinished(account string, _ *Stats) {}
