package statuspage

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mailferry/mailferry/msgreport"
	"github.com/mailferry/mailferry/pipeline"
)

// ListJSON is GET /api/accounts.
type ListJSON struct {
	Generated time.Time `json:"generated"`
	// Live says a run in this process is going on (the page shows its
	// progress); false when the page reads the ledger alone.
	Live    bool `json:"live"`
	Actions bool `json:"actions"`
	// NeedLogin: actions are on and this request carries no token.
	NeedLogin  bool          `json:"need_login"`
	Totals     Totals        `json:"totals"`
	Accounts   []AccountJSON `json:"accounts"`
	Throughput Throughput    `json:"throughput"`
	// Hosts and Classes are the values the filters offer.
	Hosts   []string `json:"hosts"`
	Classes []string `json:"classes"`
}

// Throughput is the chart's data: messages and bytes copied per interval.
type Throughput struct {
	StepSeconds float64  `json:"step_seconds"`
	Samples     []Sample `json:"samples"`
}

// DetailJSON is GET /api/accounts/{name}.
type DetailJSON struct {
	AccountJSON
	Folders []FolderJSON `json:"folders"`
	// Skipped and FailedMessages list up to detailMax messages each, with
	// their reasons; Messages in AccountJSON has the counts.
	SkippedMessages []MessageJSON `json:"skipped_messages"`
	FailedMessages  []MessageJSON `json:"failed_messages"`
	Runs            []RunJSON     `json:"runs"`
}

// FolderJSON counts the messages of one source folder.
type FolderJSON struct {
	Source  string `json:"source"` // "" for POP3
	Dest    string `json:"dest"`   // the destination folder of most of them
	Done    int    `json:"done"`
	Skipped int    `json:"skipped"`
	Failed  int    `json:"failed"`
	Pending int    `json:"pending"`
	Bytes   int64  `json:"bytes"` // copied
}

// MessageJSON is one skipped or failed message.
type MessageJSON struct {
	SourceFolder string    `json:"source_folder"`
	SourceID     string    `json:"source_id"`
	Size         int64     `json:"size"`
	Reason       string    `json:"reason"`
	When         time.Time `json:"when"`
}

// ActionJSON answers an action.
type ActionJSON struct {
	Account AccountJSON  `json:"account"`
	Retry   *RetryCounts `json:"retry,omitempty"`
	Message string       `json:"message"`
}

const (
	detailMax      = 200 // skipped and failed messages listed in the detail view
	detailRuns     = 10
	historyWindow  = 6 * time.Hour
	historyStep    = time.Minute
	historyRefresh = 30 * time.Second
)

// sortKeys are the orders GET /api/accounts takes (?sort=).
var sortKeys = map[string]func(a, b *AccountJSON) bool{
	"name":     func(a, b *AccountJSON) bool { return a.Name < b.Name },
	"state":    func(a, b *AccountJSON) bool { return stateRank(a.State) < stateRank(b.State) },
	"host":     func(a, b *AccountJSON) bool { return a.SourceHost < b.SourceHost },
	"progress": func(a, b *AccountJSON) bool { return progress(a) < progress(b) },
	"messages": func(a, b *AccountJSON) bool { return a.Messages.Total > b.Messages.Total },
	"error":    func(a, b *AccountJSON) bool { return errClass(a) > errClass(b) },
}

func stateRank(s State) int {
	for i, st := range []State{Failed, Partial, Running, Paused, Queued, Done} {
		if s == st {
			return i
		}
	}
	return len(States)
}

func progress(a *AccountJSON) float64 {
	if a.Messages.Total == 0 {
		return 0
	}
	return float64(a.Messages.Done) / float64(a.Messages.Total)
}

func errClass(a *AccountJSON) string {
	if a.LastError == nil {
		return ""
	}
	return a.LastError.Class
}

// listQuery is the parsed query of GET /api/accounts.
type listQuery struct {
	states map[State]bool
	host   string
	class  string
	sort   string
	desc   bool
}

// parseListQuery checks ?state=a,b&host=&class=&sort=[-]key.
func parseListQuery(q url.Values) (listQuery, error) {
	lq := listQuery{states: map[State]bool{}, sort: "name"}
	for k := range q {
		switch k {
		case "state", "host", "class", "sort":
		default:
			return lq, fmt.Errorf("unknown parameter %q (want state, host, class, sort)", k)
		}
	}
	for _, v := range q["state"] {
		for _, s := range strings.Split(v, ",") {
			if s == "" {
				continue
			}
			if !validState(s) {
				return lq, fmt.Errorf("state %q: want one of queued, running, done, failed, partial, paused", s)
			}
			lq.states[State(s)] = true
		}
	}
	lq.host, lq.class = q.Get("host"), q.Get("class")
	if s := q.Get("sort"); s != "" {
		lq.sort, lq.desc = strings.CutPrefix(s, "-")
		if sortKeys[lq.sort] == nil {
			return lq, fmt.Errorf("sort %q: want name, state, host, progress, messages or error, with - for descending", s)
		}
	}
	return lq, nil
}

func (lq listQuery) keep(a *AccountJSON) bool {
	if len(lq.states) > 0 && !lq.states[a.State] {
		return false
	}
	if lq.host != "" && a.SourceHost != lq.host && a.DestHost != lq.host {
		return false
	}
	if lq.class != "" && errClass(a) != lq.class {
		return false
	}
	return true
}

// accounts lists what the page shows: the configured accounts, or every
// account of the ledger named by its key.
func (s *Server) accounts(sums map[string]Summary) []Account {
	if s.opts.Accounts != nil {
		return s.opts.Accounts
	}
	out := make([]Account, 0, len(sums))
	for k := range sums {
		out = append(out, Account{Name: k, Key: k})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// summaries reads every account's summary, at most once per cacheTTL:
// however many browsers poll, the ledger is read at that pace. The TTL
// follows the read's cost (ten times it, at least a second), so that a
// huge ledger is not read back to back.
func (s *Server) summaries(ctx context.Context) (map[string]Summary, error) {
	gen := s.opts.Live.generation()
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	// An account that started or finished in this process changes what
	// the ledger says of it (its run is recorded before the engine says
	// so): read it afresh then.
	if s.cache != nil && s.now().Sub(s.cacheAt) < s.cacheTTL && gen == s.cacheGen {
		return s.cache, nil
	}
	start := time.Now()
	sums, err := s.opts.Ledger.Summaries(ctx)
	if err != nil {
		return nil, err
	}
	s.cache, s.cacheAt, s.cacheGen = sums, s.now(), gen
	s.cacheTTL = max(time.Second, 10*time.Since(start))
	return sums, nil
}

// forget drops the cached summaries, after an action changed them.
func (s *Server) forget() {
	s.cacheMu.Lock()
	s.cache = nil
	s.cacheMu.Unlock()
}

func (s *Server) handleAccounts(w http.ResponseWriter, r *http.Request) {
	lq, err := parseListQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The engine's snapshot first, then the ledger: an account the
	// snapshot has as finished is then finished in the ledger too.
	live, samples, running := s.opts.Live.snapshot()
	sums, err := s.summaries(r.Context())
	if err != nil {
		s.ledgerError(w, err)
		return
	}
	now := s.now()
	out := ListJSON{Generated: now.UTC(), Live: running, Actions: s.opts.Actions, Accounts: []AccountJSON{},
		Hosts: []string{}, Classes: []string{}}
	if ok, _ := s.authenticated(r); s.opts.Actions && !ok {
		out.NeedLogin = true
	}
	hosts, classes := map[string]bool{}, map[string]bool{}
	var all []AccountJSON
	for _, a := range s.accounts(sums) {
		var lv *liveView
		sum := sums[a.Key]
		if v, ok := live[a.Key]; ok {
			lv = &v
		}
		aj := accountJSON(a, sum, lv, now)
		all = append(all, aj)
		for _, h := range []string{a.SourceHost, a.DestHost} {
			if h != "" {
				hosts[h] = true
			}
		}
		if c := errClass(&aj); c != "" {
			classes[c] = true
		}
		if lq.keep(&aj) {
			out.Accounts = append(out.Accounts, aj)
		}
	}
	less := sortKeys[lq.sort]
	sort.SliceStable(out.Accounts, func(i, j int) bool {
		if lq.desc {
			return less(&out.Accounts[j], &out.Accounts[i])
		}
		return less(&out.Accounts[i], &out.Accounts[j])
	})
	out.Totals = totalsOf(all)
	out.Hosts, out.Classes = sortedKeys(hosts), sortedKeys(classes)
	if s.opts.Live != nil {
		out.Throughput = Throughput{StepSeconds: sampleStep.Seconds(), Samples: samples}
	} else {
		out.Throughput = Throughput{StepSeconds: historyStep.Seconds(), Samples: s.historySamples(r.Context(), now)}
	}
	if out.Throughput.Samples == nil {
		out.Throughput.Samples = []Sample{}
	}
	writeJSON(w, http.StatusOK, out)
}

// historySamples is the ledger's copy history for the chart, read at most
// every historyRefresh (it reads every recent done entry).
func (s *Server) historySamples(ctx context.Context, now time.Time) []Sample {
	s.historyMu.Lock()
	defer s.historyMu.Unlock()
	if s.history != nil && now.Sub(s.historyAt) < historyRefresh {
		return s.history
	}
	h, err := s.opts.Ledger.History(ctx, now.Add(-historyWindow).Truncate(historyStep), historyStep)
	if err != nil {
		s.log.Warn("status page: reading the copy history", "error", err)
		return s.history
	}
	if h == nil {
		h = []Sample{}
	}
	s.history, s.historyAt = h, now
	return h
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// find returns the account named name (its config name, or its ledger key
// without a config).
func (s *Server) find(ctx context.Context, name string) (Account, bool, error) {
	if s.opts.Accounts != nil {
		for _, a := range s.opts.Accounts {
			if a.Name == name {
				return a, true, nil
			}
		}
		return Account{}, false, nil
	}
	sums, err := s.summaries(ctx)
	if err != nil {
		return Account{}, false, err
	}
	if _, ok := sums[name]; ok {
		return Account{Name: name, Key: name}, true, nil
	}
	return Account{}, false, nil
}

// named resolves the {name} of the path, answering 404 itself.
func (s *Server) named(w http.ResponseWriter, r *http.Request) (Account, bool) {
	name := r.PathValue("name")
	a, ok, err := s.find(r.Context(), name)
	switch {
	case err != nil:
		s.ledgerError(w, err)
	case !ok:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no account named %q", name))
	}
	return a, ok && err == nil
}

// one builds the AccountJSON of a, reading its summary afresh.
func (s *Server) one(ctx context.Context, a Account) (AccountJSON, error) {
	sum, err := s.opts.Ledger.Summary(ctx, a.Key)
	if err != nil {
		return AccountJSON{}, err
	}
	live, _, _ := s.opts.Live.snapshot()
	var lv *liveView
	if v, ok := live[a.Key]; ok {
		lv = &v
	}
	return accountJSON(a, sum, lv, s.now()), nil
}

func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		writeError(w, http.StatusBadRequest, "this endpoint takes no parameters")
		return
	}
	a, ok := s.named(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	aj, err := s.one(ctx, a)
	if err != nil {
		s.ledgerError(w, err)
		return
	}
	out := DetailJSON{AccountJSON: aj, Folders: []FolderJSON{}, SkippedMessages: []MessageJSON{},
		FailedMessages: []MessageJSON{}, Runs: []RunJSON{}}
	folders := map[string]*FolderJSON{}
	dests := map[string]map[string]int{}
	err = s.opts.Ledger.Messages(ctx, a.Key, nil, 0, func(e pipeline.Entry) error {
		row := msgreport.RowOf(a.Name, e)
		f := folders[row.SourceFolder]
		if f == nil {
			f = &FolderJSON{Source: row.SourceFolder}
			folders[row.SourceFolder] = f
			dests[row.SourceFolder] = map[string]int{}
		}
		if row.DestFolder != "" {
			dests[row.SourceFolder][row.DestFolder]++
		}
		m := MessageJSON{SourceFolder: row.SourceFolder, SourceID: row.SourceID, Size: row.Size, Reason: row.Reason, When: row.When}
		switch e.State {
		case pipeline.StateDone:
			f.Done++
			f.Bytes += e.Size
		case pipeline.StateSkipped:
			f.Skipped++
			if len(out.SkippedMessages) < detailMax {
				out.SkippedMessages = append(out.SkippedMessages, m)
			}
		case pipeline.StateFailed:
			f.Failed++
			if len(out.FailedMessages) < detailMax {
				out.FailedMessages = append(out.FailedMessages, m)
			}
		default:
			f.Pending++
		}
		return nil
	})
	if err != nil {
		s.ledgerError(w, err)
		return
	}
	for src, f := range folders {
		best := 0
		for d, n := range dests[src] {
			if n > best || n == best && d < f.Dest {
				f.Dest, best = d, n
			}
		}
		out.Folders = append(out.Folders, *f)
	}
	sort.Slice(out.Folders, func(i, j int) bool { return out.Folders[i].Source < out.Folders[j].Source })
	runs, err := s.opts.Ledger.Runs(ctx, a.Key, detailRuns)
	if err != nil {
		s.ledgerError(w, err)
		return
	}
	for i := range runs {
		out.Runs = append(out.Runs, *runJSON(&runs[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request) {
	if !emptyBody(w, r) {
		return
	}
	a, ok := s.named(w, r)
	if !ok {
		return
	}
	n, err := s.opts.Ledger.RequestRetry(r.Context(), a.Key)
	if err != nil {
		s.ledgerError(w, err)
		return
	}
	s.forget()
	if s.opts.OnRetry != nil {
		s.opts.OnRetry(a.Key)
	}
	s.log.Info("status page: retry asked for", "account", a.Name, "skipped_made_retryable", n.Skipped, "failed", n.Failed)
	aj, err := s.one(r.Context(), a)
	if err != nil {
		s.ledgerError(w, err)
		return
	}
	msg := fmt.Sprintf("the next run tries %s again: %d failed and %d skipped messages", a.Name, n.Failed, n.Skipped)
	writeJSON(w, http.StatusOK, ActionJSON{Account: aj, Retry: &n, Message: msg})
}

func (s *Server) handlePause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !emptyBody(w, r) {
			return
		}
		a, ok := s.named(w, r)
		if !ok {
			return
		}
		if err := s.opts.Ledger.SetPaused(r.Context(), a.Key, paused); err != nil {
			s.ledgerError(w, err)
			return
		}
		s.forget()
		what, msg := "resumed", a.Name+" is resumed: the next run (or poll) starts it"
		if paused {
			what, msg = "paused", a.Name+" is paused: runs and polls leave it alone until it is resumed (a run working on it now finishes)"
		}
		s.log.Info("status page: account "+what, "account", a.Name)
		aj, err := s.one(r.Context(), a)
		if err != nil {
			s.ledgerError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ActionJSON{Account: aj, Message: msg})
	}
}

// emptyBody accepts an action without a body, or with an empty JSON
// object; anything else is a 400 (or 413 when large).
func emptyBody(w http.ResponseWriter, r *http.Request) bool {
	if len(r.URL.Query()) > 0 {
		writeError(w, http.StatusBadRequest, "actions take no parameters")
		return false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1024))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "the request body is too large")
		return false
	}
	if body := strings.TrimSpace(string(b)); body != "" && body != "{}" {
		writeError(w, http.StatusBadRequest, "actions take no body (or {})")
		return false
	}
	return true
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "format" && k != "account" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q (want format, account)", k))
			return
		}
	}
	f, err := msgreport.ParseFormat(firstNonEmpty(q.Get("format"), "csv"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var accounts []msgreport.Account
	if name := q.Get("account"); name != "" {
		a, ok, err := s.find(r.Context(), name)
		if err != nil {
			s.ledgerError(w, err)
			return
		} else if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no account named %q", name))
			return
		}
		accounts = []msgreport.Account{{Name: a.Name, Key: a.Key}}
	} else {
		sums, err := s.summaries(r.Context())
		if err != nil {
			s.ledgerError(w, err)
			return
		}
		for _, a := range s.accounts(sums) {
			accounts = append(accounts, msgreport.Account{Name: a.Name, Key: a.Key})
		}
	}
	w.Header().Set("Content-Type", f.ContentType())
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="mailferry-report-%s.%s"`, s.now().UTC().Format("20060102-150405"), f))
	scan := func(ctx context.Context, key string, fn func(pipeline.Entry) error) error {
		return s.opts.Ledger.Messages(ctx, key, nil, 0, fn)
	}
	if _, err := msgreport.Write(r.Context(), w, f, accounts, scan); err != nil {
		// The status line is gone; the cut-off file says something failed.
		s.log.Warn("status page: writing the report", "error", err)
	}
}

// handleLogin checks the token a browser sends ({"token": "..."}) and sets
// the session cookie.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if s.session == nil {
		writeError(w, http.StatusNotFound, "this page has no token: nothing to log in to")
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `want {"token": "..."}`)
		return
	}
	if subtle.ConstantTimeCompare([]byte(req.Token), []byte(s.opts.Token.Reveal())) != 1 {
		s.log.Warn("status page: a log-in with a wrong token", "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "wrong token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: string(s.session), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	writeJSON(w, http.StatusOK, map[string]string{"message": "logged in"})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, map[string]string{"message": "logged out"})
}

// ledgerError answers 500 for a ledger that could not be read; the error
// is logged and said (it names no secret).
func (s *Server) ledgerError(w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.log.Warn("status page: reading the ledger", "error", err)
	writeError(w, http.StatusInternalServerError, "reading the ledger: "+err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
