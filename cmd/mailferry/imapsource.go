package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
)

// folderOptions select and place the folders of an IMAP source; the same
// settings as the config's [folders] section.
type folderOptions struct {
	include, exclude []string
	root             string
	rename           []config.FolderRename
	syncFlags        bool
	specialUse       bool
	maxAge, minAge   time.Duration
}

// imapSourceOptions are the imapsrc options of an IMAP source.
func (s serverSetup) imapSourceOptions(fo folderOptions) (imapsrc.Options, error) {
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return imapsrc.Options{}, err
	}
	mode := clientTLSMode(s.ep.TLS)
	user, authz := s.credentials()
	include := fo.include
	if s.ep.Mailbox != "" {
		include = append([]string{s.ep.Mailbox}, include...)
	}
	return imapsrc.Options{
		Addr: s.ep.Addr(), TLS: mode, TLSConfig: tlsCfg,
		User: user, AuthzID: authz, Password: s.password,
		AllowPlaintext: s.allowPlaintext, IdleTimeout: s.idleTimeout,
		Logger: s.log, Trace: s.trace, Include: include, Exclude: fo.exclude,
		Auth: authMethod(s.auth), PasswordFunc: s.passwordFunc, TokenRejected: s.tokenRejected,
	}, nil
}

// openIMAPSource returns a function that opens a session on an IMAP source.
func (s serverSetup) openIMAPSource(fo folderOptions) (func(ctx context.Context) (pipeline.Source, error), error) {
	opts, err := s.imapSourceOptions(fo)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (pipeline.Source, error) {
		src, err := imapsrc.Open(ctx, opts)
		if err != nil {
			return nil, err
		}
		if fo.maxAge > 0 || fo.minAge > 0 {
			return &ageFilter{Source: src, maxAge: fo.maxAge, minAge: fo.minAge, now: time.Now}, nil
		}
		return src, nil
	}, nil
}

// unwrapper is implemented by decorators of sources and destinations.
type unwrapper[T any] interface{ Unwrap() T }

func unwrap[T any](v T) T {
	for {
		u, ok := any(v).(unwrapper[T])
		if !ok {
			return v
		}
		v = u.Unwrap()
	}
}

// imapFolderMapper returns the pipeline's MapFolders for an IMAP source:
// each source folder's destination by the folder map (separators,
// namespace prefixes, special use, rename rules, root), creating the
// destination folders with their special use and subscribing where the
// source subscribes.
func imapFolderMapper(fo folderOptions, log *slog.Logger) func(ctx context.Context, src pipeline.Source, dst pipeline.Destination, create bool) (map[string]string, error) {
	return func(ctx context.Context, src pipeline.Source, dst pipeline.Destination, create bool) (map[string]string, error) {
		is, ok := unwrap(src).(*imapsrc.Source)
		if !ok {
			return nil, fmt.Errorf("folder mapping needs an IMAP source, got %T", src)
		}
		id, ok := unwrap(dst).(*imapdst.Destination)
		if !ok {
			return nil, fmt.Errorf("folder mapping needs an IMAP destination, got %T", dst)
		}
		srcFolders, err := is.Folders(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing source folders: %w", err)
		}
		dstList, err := id.Folders(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing destination folders: %w", err)
		}
		prefix, _ := is.Namespace()
		var rules []mapping.FolderRule
		for _, r := range fo.rename {
			rules = append(rules, mapping.FolderRule{From: r.From, To: r.To, Regexp: r.Regexp})
		}
		mfolders := make([]mapping.Folder, len(srcFolders))
		for i, f := range srcFolders {
			mfolders[i] = mapping.Folder{Name: f.Name, Delim: f.Delimiter, Attrs: f.Attrs}
		}
		fm, err := mapping.NewFolderMap(mapping.FolderOptions{
			SourcePrefix: prefix, DestDelim: dstList.Delim, DestPrefix: dstList.Prefix, Root: fo.root,
			Rules: rules, DestFolders: dstList.Folders,
			SourceMarksSpecialUse: mapping.HasSpecialUse(mfolders), NoSpecialUse: !fo.specialUse,
		})
		if err != nil {
			return nil, fmt.Errorf("folder rules: %w", err)
		}
		plan := map[string]string{}
		from := map[string]string{} // destination → first source folder, to report merges
		for i, f := range srcFolders {
			if !is.Included(f) {
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
			if _, err := id.EnsureMailboxUse(ctx, t.Name, t.SpecialUse); err != nil {
				return nil, fmt.Errorf("creating destination folder %q for %q: %w", t.Name, f.Name, err)
			}
			if f.Subscribed {
				if err := id.Subscribe(ctx, t.Name); err != nil {
					return nil, fmt.Errorf("subscribing to %q: %w", t.Name, err)
				}
			}
		}
		return plan, nil
	}
}

// sameIMAPOrigin tells whether oldKey may be an earlier identity of newKey:
// the same source folder under another UIDVALIDITY.
func sameIMAPOrigin(oldKey, newKey string) bool {
	om, ov, _, err1 := imapsrc.ParseKey(oldKey)
	nm, nv, _, err2 := imapsrc.ParseKey(newKey)
	return err1 == nil && err2 == nil && om == nm && ov != nv
}

// ageFilter hides messages outside an age window (by internal date) from
// the pipeline: --max-age and --min-age.
type ageFilter struct {
	pipeline.Source
	maxAge, minAge time.Duration
	now            func() time.Time
}

func (f *ageFilter) Unwrap() pipeline.Source { return f.Source }

func (f *ageFilter) Prefetch(ctx context.Context, msgs []pipeline.SourceMessage) error {
	if p, ok := f.Source.(pipeline.Prefetcher); ok {
		return p.Prefetch(ctx, msgs)
	}
	return nil
}

func (f *ageFilter) List(ctx context.Context) ([]pipeline.SourceMessage, error) {
	msgs, err := f.Source.List(ctx)
	if err != nil {
		return nil, err
	}
	now := f.now()
	out := msgs[:0]
	for _, m := range msgs {
		age := now.Sub(m.InternalDate)
		if m.InternalDate.IsZero() || (f.maxAge == 0 || age <= f.maxAge) && age >= f.minAge {
			out = append(out, m)
		}
	}
	return out, nil
}
