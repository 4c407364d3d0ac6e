package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/internal/suggest"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/provider"
)

// mapFolders is pipeline.Options.MapFolders of an IMAP source: the engine
// hands it the sessions Open made.
func (a *Account) mapFolders(ctx context.Context, src pipeline.Source, dst pipeline.Destination, create bool) (map[string]string, error) {
	is, ok := src.(*imapsrc.Source)
	if !ok {
		return nil, fmt.Errorf("folder mapping needs an IMAP source, got %T", src)
	}
	id, ok := dst.(*imapdst.Destination)
	if !ok {
		return nil, fmt.Errorf("folder mapping needs an IMAP destination, got %T", dst)
	}
	return a.MapFolders(ctx, is, id, create)
}

// MapFolders maps each folder of an IMAP source to its destination folder
// by the folder map (separators, namespace prefixes, special use, rename
// rules, root) and returns source → destination for the folders the copy
// copies: those Folders.Include and Exclude select and the map does not
// skip. With create it also creates the destination folders, with their
// special use, and subscribes to those the source subscribes to; without,
// it changes nothing (dry runs, verify, plan).
func (a *Account) MapFolders(ctx context.Context, src *imapsrc.Source, dst *imapdst.Destination, create bool) (map[string]string, error) {
	log := a.src.log
	// Both sides list at once: on distant servers each listing waits
	// round trips of its own (issue 18).
	var (
		dstList imapdst.FolderList
		dstErr  error
		listed  = make(chan struct{})
	)
	go func() {
		defer close(listed)
		dstList, dstErr = dst.Folders(ctx)
	}()
	srcFolders, err := src.Folders(ctx)
	<-listed
	if err != nil {
		return nil, fmt.Errorf("listing source folders: %w", err)
	}
	if dstErr != nil {
		return nil, fmt.Errorf("listing destination folders: %w", dstErr)
	}
	prefix, _ := src.Namespace()
	var rules []mapping.FolderRule
	for _, r := range a.Folders.Rename {
		rules = append(rules, mapping.FolderRule{From: r.From, To: r.To, Regexp: r.Regexp})
	}
	mfolders := make([]mapping.Folder, len(srcFolders))
	for i, f := range srcFolders {
		mfolders[i] = mapping.Folder{Name: f.Name, Delim: f.Delimiter, Attrs: f.Attrs}
	}
	fm, err := mapping.NewFolderMap(mapping.FolderOptions{
		SourcePrefix: prefix, DestDelim: dstList.Delim, DestPrefix: dstList.Prefix, Root: a.Folders.Root,
		Rules: rules, DestFolders: dstList.Folders,
		SourceMarksSpecialUse: mapping.HasSpecialUse(mfolders), NoSpecialUse: !a.Folders.SpecialUse,
		// A source with labels lists in All Mail only the archived mail.
		AllIsArchive: provider.QuirksOf(src.Provider()).Labels,
	})
	if err != nil {
		return nil, fmt.Errorf("folder rules: %w", err)
	}
	dq := provider.QuirksOf(dst.Provider())
	existing := destNames{q: dq, names: map[string]string{}}
	selectable := map[string]bool{} // existing, and a folder to append to
	subscribed := map[string]bool{}
	for _, f := range dstList.Folders {
		existing.add(f.Name)
		selectable[f.Name] = !hasAttr(f.Attrs, `\Noselect`) && !hasAttr(f.Attrs, `\NonExistent`)
		subscribed[f.Name] = hasAttr(f.Attrs, `\Subscribed`)
	}
	plan := map[string]string{}
	from := map[string]string{} // destination → first source folder, to report merges
	for i, f := range srcFolders {
		if !src.Included(f) {
			continue // --folder / --exclude-folder: no destination folder either
		}
		t := fm.Lookup(mfolders[i])
		if t.Skip != mapping.NotSkipped {
			log.Info("folder not copied", "folder", f.Name, "why", t.Skip.String())
			continue
		}
		if rel, ok := strings.CutPrefix(t.Name, dstList.Prefix); ok && dq.NotMail(rel, dstList.Delim) && !strings.EqualFold(rel, "INBOX") {
			// Exchange keeps the name for items that are not mail: the
			// folder's mail would vanish from the user's view there.
			to := dstList.Prefix + dq.ReservedTarget(rel, dstList.Delim)
			log.Info("folder goes to another name: the destination keeps its name for items that are not mail", "folder", f.Name, "reserved", t.Name, "to", to)
			a.notes.add(fmt.Sprintf("folder %q goes to %q: the destination keeps %q for items that are not mail", f.Name, to, t.Name))
			t.Name = to
		}
		name := a.safeName(f.Name, t.Name, dstList, existing)
		if had, ok := existing.find(name); ok {
			name = had // the server's spelling (Exchange: names without case)
		}
		// A folder the destination's LIST named needs nothing more: one
		// round trip per folder less on every run (issue 18). Should it
		// go meanwhile, the first append there creates it again
		// (pipeline's EnsureMailbox).
		if create && !selectable[name] {
			if name, err = a.createFolder(ctx, dst, f.Name, t, name, dstList); err != nil {
				return nil, err
			}
			existing.add(name)
			selectable[name] = true
		}
		plan[f.Name] = name
		if other, dup := from[name]; dup {
			log.Warn("two source folders go to one destination folder", "folders", []string{other, f.Name}, "destination", name)
		} else {
			from[name] = f.Name
		}
		log.Debug("folder mapped", "from", f.Name, "to", name, "special_use", t.SpecialUse)
		if create && f.Subscribed && !(dstList.Subscriptions && subscribed[name]) {
			if err := dst.Subscribe(ctx, name); err != nil {
				return nil, fmt.Errorf("subscribing to %q: %w", name, err)
			}
		}
	}
	return plan, nil
}

// safeName is where the folder mapped to target goes when target does
// not exist on the destination but one of its safe names
// (mapping.SafeFolderNames) does: an earlier run found target refused and
// created that one, and the folder goes there again, so that the mapping
// is the same on every run (and in plan and verify, which create
// nothing). Otherwise it is target.
func (a *Account) safeName(source, target string, dl imapdst.FolderList, existing destNames) string {
	if _, ok := existing.find(target); ok || strings.EqualFold(target, "INBOX") {
		return target
	}
	for _, c := range mapping.SafeFolderNames(target, dl.Delim, dl.Prefix) {
		if _, ok := existing.find(c); ok {
			a.notes.add(fmt.Sprintf("folder %q goes to %q, the safe name an earlier run gave it: the destination refused %q", source, c, target))
			return c
		}
	}
	return target
}

// destNames are the destination's folders, found by name as the server
// compares names (provider.Quirks.SameName: INBOX in any case; every name
// without case on Exchange, where CREATE "Archive" beside "archive" is
// answered that it exists), each with the server's own spelling: two
// source folders whose names differ only in case go to one folder there,
// never to two names of one folder.
type destNames struct {
	q     provider.Quirks
	names map[string]string // key → the name as the server has it
}

func (d destNames) key(name string) string {
	if d.q.CaseInsensitiveNames || strings.EqualFold(name, "INBOX") {
		return strings.ToLower(name)
	}
	return name
}

func (d destNames) add(name string) {
	if _, ok := d.names[d.key(name)]; !ok {
		d.names[d.key(name)] = name
	}
}

// find returns the destination's folder that name names, as the server
// spells it.
func (d destNames) find(name string) (string, bool) {
	had, ok := d.names[d.key(name)]
	return had, ok
}

// createFolder creates the destination folder of source: name (target's
// name, or the safe name safeName chose) with target's special use. A
// server that refuses the name itself (imapdst.ReplyError.NameRefused:
// its characters, length, a parent that cannot have children) gets the
// safe names of mapping.SafeFolderNames in turn, and the first it takes
// is reported (log and the run's notes). When it takes none, the folder's
// messages go to INBOX, reported likewise: a name is never a reason to
// fail the account, nor to leave mail behind.
func (a *Account) createFolder(ctx context.Context, dst *imapdst.Destination, source string, t mapping.Target, name string, dl imapdst.FolderList) (string, error) {
	_, err := dst.EnsureMailboxUse(ctx, name, t.SpecialUse)
	var re *imapdst.ReplyError
	if err == nil || name != t.Name || !errors.As(err, &re) || !re.NameRefused() {
		if err != nil {
			return "", fmt.Errorf("creating destination folder %q for %q: %w", name, source, err)
		}
		return name, nil
	}
	refusal := err
	for _, c := range append(mapping.SafeFolderNames(t.Name, dl.Delim, dl.Prefix), "INBOX") {
		use := t.SpecialUse
		if c == "INBOX" {
			use = ""
		}
		_, err := dst.EnsureMailboxUse(ctx, c, use)
		if err == nil {
			what := "the safe name"
			if c == "INBOX" {
				what = "INBOX, as no safe name was taken either"
			}
			a.src.log.Warn("the destination refused a folder name; the folder goes to "+what,
				"folder", source, "refused", t.Name, "to", c, "reply", refusal)
			a.notes.add(fmt.Sprintf("folder %q goes to %q: the destination refused %q (%v)", source, c, t.Name, refusal))
			return c, nil
		}
		if !errors.As(err, &re) || !re.NameRefused() {
			return "", fmt.Errorf("creating destination folder %q for %q (the server refused %q): %w", c, source, t.Name, err)
		}
	}
	return "", fmt.Errorf("creating destination folder %q for %q: %w", t.Name, source, refusal)
}

// OpenSourceMapped opens a source session for reading only (verify, plan:
// close it with Close(false)). For an IMAP source it also maps the folders
// as the copy would, creating none, through a destination session opened
// with the source (taking the slots of both at once) and closed again;
// folders the copy would not copy are absent from the map. For a POP3
// source the map is nil.
func (a *Account) OpenSourceMapped(ctx context.Context) (pipeline.Source, map[string]string, error) {
	if !a.sourceIMAP {
		src, err := a.OpenSource(ctx)
		if err != nil {
			return nil, nil, &pipeline.SideError{Side: "source", Err: err}
		}
		return src, nil, nil
	}
	src, dst, err := a.Open(ctx, pipeline.OpenOptions{})
	if err != nil {
		return nil, nil, err
	}
	defer dst.Close()
	if err := a.checkSourceFolders(ctx, src.(*imapsrc.Source)); err != nil {
		src.Close(false)
		return nil, nil, err
	}
	folders, err := a.MapFolders(ctx, src.(*imapsrc.Source), dst, false)
	if err != nil {
		src.Close(false)
		return nil, nil, fmt.Errorf("mapping folders: %w", err)
	}
	return src, folders, nil
}

// named is a folder the user typed, and where they typed it.
type named struct{ name, from string }

// namedFolders are the folders an account's command line or config names
// explicitly: the source folders that must exist (the source URL's path,
// the include patterns without wildcards), and the destination folder a
// copy creates only with CreateFolders when it is a new top-level folder.
type namedFolders struct {
	source []named
	dest   named // name "": none named, or INBOX
}

// namedIn finds the folders sp names explicitly.
func namedIn(sp spec, sourceIMAP bool) namedFolders {
	var n namedFolders
	if sourceIMAP {
		if mb := sp.src.ep.Mailbox; mb != "" && plainName(mb) {
			n.source = append(n.source, named{mb, sp.srcFolderFrom})
		}
		for _, p := range sp.folders.Include {
			if plainName(p) {
				n.source = append(n.source, named{p, sp.includeFrom})
			}
		}
		// An IMAP source's folders go under DEST's path, the root.
		if root := sp.dst.ep.Mailbox; root != "" {
			n.dest = named{root, sp.destFolderFrom}
		}
		return n
	}
	if mb := mapping.DestFolder(sp.dst.ep.Mailbox); mb != "INBOX" {
		n.dest = named{mb, sp.destFolderFrom}
	}
	return n
}

// plainName reports whether a folder pattern is a plain name: no wildcard
// (mapping.Match's *, % and ?).
func plainName(p string) bool { return !strings.ContainsAny(p, "*%?") }

// FolderError is a folder the command line or the config names that is
// not there: a source folder named explicitly (a URL's path, --folder or
// folders.include without wildcards) that matches no source folder, or a
// new top-level destination folder (DEST's path, dest_folder,
// [destination] folder, [folders] root) that a copy creates only when told
// to (--create-folders, create_folders): a typo such as INBX must not
// become a folder. It is raised before anything is copied or created.
// The commands treat it as a usage error: copy, verify and plan exit 2;
// in a run of several accounts that account fails and the others go on.
type FolderError struct {
	Side string // "source" or "destination"
	// Folder is the name as the user typed it, From where ("--folder",
	// "DEST's folder", "dest_folder", ...).
	Folder, From string
	// Top is the destination folder that does not exist: Folder's first
	// level as the destination names it ("" for the source).
	Top string
	// Closest are the existing folders nearest to the name (edit
	// distance, case-insensitive), nearest first; Existing every folder
	// of that side, for when none is near.
	Closest, Existing []string
}

func (e *FolderError) Error() string {
	var b strings.Builder
	if e.Side == "source" {
		fmt.Fprintf(&b, "source folder %q (%s) does not exist", e.Folder, e.From)
	} else {
		fmt.Fprintf(&b, "destination folder %q (%s) does not exist", e.Folder, e.From)
		if e.Top != "" && e.Top != e.Folder {
			fmt.Fprintf(&b, ", nor does its top-level folder %q", e.Top)
		}
		b.WriteString("; a copy creates a new top-level folder only with --create-folders (create_folders = true in a config)")
	}
	switch {
	case len(e.Closest) > 0:
		fmt.Fprintf(&b, "; did you mean %s?", suggest.Quote(e.Closest))
	case len(e.Existing) > 0 && len(e.Existing) <= 12:
		fmt.Fprintf(&b, "; the %s has %s", e.Side, strings.Join(e.Existing, ", "))
	case len(e.Existing) > 12:
		fmt.Fprintf(&b, "; the %s has %s, … (%d folders)", e.Side, strings.Join(e.Existing[:12], ", "), len(e.Existing))
	}
	return b.String()
}

// ErrorClass makes a FolderError fatal for the engine: trying again
// cannot help.
func (e *FolderError) ErrorClass() pipeline.Class { return pipeline.ClassFatal }

// checkFolders runs checkSourceFolders (IMAP sources) and
// checkDestFolder on a copy's sessions, before anything is listed, copied
// or created.
func (a *Account) checkFolders(ctx context.Context, src pipeline.Source, dst *imapdst.Destination) error {
	var serr error
	if is, ok := src.(*imapsrc.Source); ok {
		serr = a.checkSourceFolders(ctx, is)
	}
	return errors.Join(serr, a.checkDestFolder(ctx, dst))
}

// checkSourceFolders returns a *FolderError (joined, one per name) for
// each source folder the user named explicitly that matches no folder of
// src, as the copy matches them (mapping.FolderFilter).
func (a *Account) checkSourceFolders(ctx context.Context, src *imapsrc.Source) error {
	if len(a.named.source) == 0 {
		return nil
	}
	folders, err := src.Folders(ctx)
	if err != nil {
		return fmt.Errorf("listing source folders: %w", err)
	}
	prefix, _ := src.Namespace()
	mf := make([]mapping.Folder, len(folders))
	var names []string // as a user writes them: "/" between levels, no prefix
	for i, f := range folders {
		mf[i] = mapping.Folder{Name: f.Name, Delim: f.Delimiter, Attrs: f.Attrs}
		n := f.Name
		if prefix != "" && len(n) > len(prefix) && strings.HasPrefix(n, prefix) {
			n = n[len(prefix):]
		}
		if f.Delimiter != 0 && f.Delimiter != '/' {
			n = strings.ReplaceAll(n, string(f.Delimiter), "/")
		}
		names = append(names, n)
	}
	var errs []error
	for _, n := range a.named.source {
		filter, err := mapping.NewFolderFilter([]string{n.name}, nil)
		if err != nil {
			return err
		}
		if missing, _ := filter.Unmatched(mf, prefix); len(missing) > 0 {
			errs = append(errs, &FolderError{Side: "source", Folder: n.name, From: n.from,
				Closest: suggest.Closest(n.name, names, 3), Existing: names})
		}
	}
	return errors.Join(errs...)
}

// checkDestFolder returns a *FolderError when the destination folder the
// user named (n.dest) is, or is under, a top-level folder the destination
// does not have, and CreateFolders is off. A folder under an existing one
// ("INBOX/Old", "Archive/2019" when Archive exists) needs no permission:
// a typo at the top is what makes a stray folder.
func (a *Account) checkDestFolder(ctx context.Context, dst *imapdst.Destination) error {
	n := a.named.dest
	if n.name == "" || a.CreateFolders {
		return nil
	}
	fl, err := dst.Folders(ctx)
	if err != nil {
		return fmt.Errorf("listing destination folders: %w", err)
	}
	top, err := a.destTop(fl)
	if err != nil || top == "" || strings.EqualFold(top, "INBOX") {
		return err
	}
	var names []string
	for _, f := range fl.Folders {
		if f.Name == top {
			return nil
		}
		names = append(names, f.Name)
	}
	a.src.log.Debug("destination folder named is not there", "folder", n.name, "top", top)
	return &FolderError{Side: "destination", Folder: n.name, From: n.from, Top: top,
		Closest: suggest.Closest(top, names, 3), Existing: names}
}

// destTop is the top-level destination folder of the folder the user
// named, as the copy names it: an IMAP source's root goes through the
// folder map (separator, namespace prefix); a POP3 source's folder is
// used as written, up to the destination's separator.
func (a *Account) destTop(fl imapdst.FolderList) (string, error) {
	name := a.named.dest.name
	if a.sourceIMAP {
		fm, err := mapping.NewFolderMap(mapping.FolderOptions{DestDelim: fl.Delim, DestPrefix: fl.Prefix, Root: name})
		if err != nil {
			return "", fmt.Errorf("folder rules: %w", err)
		}
		return fm.RootTop(), nil
	}
	if fl.Delim != 0 {
		name, _, _ = strings.Cut(name, string(fl.Delim))
	}
	return name, nil
}

// CheckFolders checks, with sessions of its own, the folders the command
// line or the config names (see FolderError): for `mailferry plan`, which
// reports what a run would refuse. Errors that are not a *FolderError say
// that a server could not be asked.
func (a *Account) CheckFolders(ctx context.Context) error {
	if a.sourceIMAP {
		src, dst, err := a.Open(ctx, pipeline.OpenOptions{})
		if err != nil {
			return err
		}
		defer src.Close(false)
		defer dst.Close()
		return a.checkFolders(ctx, src, dst)
	}
	if a.named.dest.name == "" || a.CreateFolders {
		return nil
	}
	dst, err := a.OpenDestination(ctx)
	if err != nil {
		return err
	}
	defer dst.Close()
	return a.checkDestFolder(ctx, dst)
}

// hasAttr reports whether attrs hold attr (IMAP attributes are
// case-insensitive, RFC 3501 §7.2.2).
func hasAttr(attrs []string, attr string) bool {
	for _, a := range attrs {
		if strings.EqualFold(a, attr) {
			return true
		}
	}
	return false
}
