package account

import (
	"context"
	"fmt"

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
		plan[f.Name] = t.Name
		if other, dup := from[t.Name]; dup {
			log.Warn("two source folders go to one destination folder", "folders", []string{other, f.Name}, "destination", t.Name)
		} else {
			from[t.Name] = f.Name
		}
		log.Debug("folder mapped", "from", f.Name, "to", t.Name, "special_use", t.SpecialUse)
		if !create {
			continue
		}
		if _, err := dst.EnsureMailboxUse(ctx, t.Name, t.SpecialUse); err != nil {
			return nil, fmt.Errorf("creating destination folder %q for %q: %w", t.Name, f.Name, err)
		}
		if f.Subscribed {
			if err := dst.Subscribe(ctx, t.Name); err != nil {
				return nil, fmt.Errorf("subscribing to %q: %w", t.Name, err)
			}
		}
	}
	return plan, nil
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
