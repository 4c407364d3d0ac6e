package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
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
	srcFolders, err := src.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing source folders: %w", err)
	}
	dstList, err := dst.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing destination folders: %w", err)
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
	})
	if err != nil {
		return nil, fmt.Errorf("folder rules: %w", err)
	}
	existing := map[string]bool{}
	for _, f := range dstList.Folders {
		existing[f.Name] = true
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
		name := a.safeName(f.Name, t.Name, dstList, existing)
		if create {
			if name, err = a.createFolder(ctx, dst, f.Name, t, name, dstList); err != nil {
				return nil, err
			}
			existing[name] = true
		}
		plan[f.Name] = name
		if other, dup := from[name]; dup {
			log.Warn("two source folders go to one destination folder", "folders", []string{other, f.Name}, "destination", name)
		} else {
			from[name] = f.Name
		}
		log.Debug("folder mapped", "from", f.Name, "to", name, "special_use", t.SpecialUse)
		if create && f.Subscribed {
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
func (a *Account) safeName(source, target string, dl imapdst.FolderList, existing map[string]bool) string {
	if existing[target] || strings.EqualFold(target, "INBOX") {
		return target
	}
	for _, c := range mapping.SafeFolderNames(target, dl.Delim, dl.Prefix) {
		if existing[c] {
			a.notes.add(fmt.Sprintf("folder %q goes to %q, the safe name an earlier run gave it: the destination refused %q", source, c, target))
			return c
		}
	}
	return target
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
			return nil, nil, fmt.Errorf("opening the source: %w", err)
		}
		return src, nil, nil
	}
	src, dst, err := a.Open(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer dst.Close()
	folders, err := a.MapFolders(ctx, src.(*imapsrc.Source), dst, false)
	if err != nil {
		src.Close(false)
		return nil, nil, fmt.Errorf("mapping folders: %w", err)
	}
	return src, folders, nil
}
