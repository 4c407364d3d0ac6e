package config

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/secret"
)

// csvColumns returns the columns an accounts file may have, spelled like the
// [[account]] keys, plus one override column per server key: "source_" or
// "dest_" and the key of [source] or [destination] ("source_auth",
// "dest_master_user"). The header row names them in any order; source_user
// is required, and so is one password column for each side unless the
// server section logs in through a master user (Validate checks that).
func csvColumns() map[string]*schema {
	cols := map[string]*schema{}
	for k, v := range schemaOf(reflect.TypeFor[fileAccount]()).children {
		if v.kind != kindTable {
			cols[k] = v
		}
	}
	for _, sec := range []struct {
		section string
		t       reflect.Type
	}{{"source", reflect.TypeFor[fileSource]()}, {"destination", reflect.TypeFor[fileDestSettings]()}} {
		for k, v := range schemaOf(sec.t).children {
			if v.kind == kindTable {
				// A table's keys are columns of their own: source_oauth2_grant.
				for sub, sv := range v.children {
					cols[csvPrefix(sec.section)+k+"_"+sub] = sv
				}
				continue
			}
			cols[csvPrefix(sec.section)+k] = v
		}
	}
	return cols
}

// csvPrefix is the accounts-file column prefix of a server section's keys.
func csvPrefix(section string) string {
	if section == "destination" {
		return "dest_"
	}
	return section + "_"
}

// overrideColumns lists the override columns an accounts file may have,
// sorted.
func overrideColumns() []string {
	accountKeys := schemaOf(reflect.TypeFor[fileAccount]()).children
	var out []string
	for k := range csvColumns() {
		if _, ok := accountKeys[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// overrideCells fills the pointer fields of v (a *fileSource or
// *fileDestSettings) from the row's non-empty cells named prefix+key. It
// reports whether any cell was set. A value that does not parse is a
// *ConfigError naming the column and the line; secret cells are never
// quoted.
func overrideCells(v reflect.Value, prefix string, get func(string) string, pos position) (bool, error) {
	found := false
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			ok, err := overrideCells(v.Field(i), prefix, get, pos)
			if err != nil {
				return false, err
			}
			found = found || ok
			continue
		}
		name := prefix + f.Tag.Get("toml")
		if f.Type == reflect.TypeFor[*fileOAuth2]() {
			// A table (oauth2): its keys are the columns name_key.
			p := reflect.New(f.Type.Elem())
			ok, err := overrideCells(p.Elem(), name+"_", get, pos)
			if err != nil {
				return false, err
			}
			if ok {
				v.Field(i).Set(p)
				found = true
			}
			continue
		}
		cell := get(name)
		if f.Type.Elem() != secretTextType {
			cell = strings.TrimSpace(cell)
		}
		if cell == "" {
			continue
		}
		p := reflect.New(f.Type.Elem())
		var err error
		switch dst := p.Interface().(type) {
		case *secretText:
			err = dst.UnmarshalText([]byte(cell))
		case *Duration:
			err = dst.UnmarshalText([]byte(cell))
		case *ByteSize:
			err = dst.UnmarshalText([]byte(cell))
		case *string:
			*dst = cell
		case *bool:
			switch cell {
			case "true":
				*dst = true
			case "false":
			default:
				err = fmt.Errorf("%s must be true or false, got %q", name, cell)
			}
		case *int:
			n, perr := strconv.Atoi(cell)
			if perr != nil {
				err = fmt.Errorf("%s must be an integer, got %q", name, cell)
			}
			*dst = n
		default:
			panic("config: no CSV parser for " + f.Type.String())
		}
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, name) {
				msg = name + ": " + msg
			}
			return false, &ConfigError{File: pos.File, Line: pos.Line, Key: name, Msg: msg, Err: err}
		}
		v.Field(i).Set(p)
		found = true
	}
	return found, nil
}

// ReadAccounts reads an accounts CSV file (RFC 4180: quoted fields may hold
// commas, quotes and newlines). The first row is the header, for example
//
//	source_user,source_password,dest_user,dest_password,dest_folder
//
// An empty cell means "not set" (dest_user then defaults to source_user;
// an override column then inherits the server section's value). Load merges
// the source_* and dest_* override columns over the config's sections;
// ReadAccounts alone only parses and checks their types. Relative paths,
// and password commands, resolve against dir.
// Errors are *ConfigError values with the row's line and never contain a
// password. The warnings say when the file holds passwords and others can
// read it.
func ReadAccounts(path, dir string) ([]Account, []Warning, error) {
	return readAccountsFile(path, dir)
}

func readAccountsFile(path, dir string) ([]Account, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, &ConfigError{File: path, Key: "accounts_file", Msg: "reading accounts file: " + pathErrText(err), Err: err}
	}
	defer f.Close()
	accts, inline, err := parseAccounts(path, dir, f)
	if err != nil {
		return nil, nil, err
	}
	var warns []Warning
	if fi, err := f.Stat(); err == nil && inline && fi.Mode().Perm()&0o044 != 0 {
		warns = append(warns, Warning{File: path, Msg: fmt.Sprintf(
			"the accounts file holds passwords and is readable by group or others (mode %04o); chmod 600 it", fi.Mode().Perm())})
	}
	return accts, warns, nil
}

// maxAccountsFile bounds an accounts file (about 300,000 typical rows), so a
// wrong path such as /dev/zero fails instead of eating memory.
const maxAccountsFile = 64 << 20

// parseAccounts reads CSV from r; inline reports whether any row has a
// source_password or dest_password cell.
func parseAccounts(path, dir string, r io.Reader) (accts []Account, inline bool, err error) {
	data, err := io.ReadAll(io.LimitReader(r, maxAccountsFile+1))
	if err != nil {
		return nil, false, &ConfigError{File: path, Msg: fmt.Sprintf("reading accounts file: %v", err), Err: err}
	}
	if len(data) > maxAccountsFile {
		return nil, false, &ConfigError{File: path, Msg: fmt.Sprintf("accounts file is larger than %d MiB", maxAccountsFile>>20)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM, as spreadsheets write
	cr := csv.NewReader(bytes.NewReader(data))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, false, &ConfigError{File: path, Line: 1, Msg: "accounts file is empty: want a header row such as source_user,source_password,dest_user,dest_password"}
	}
	if err != nil {
		return nil, false, csvError(path, err)
	}
	known := csvColumns()
	if err := separatorError(path, header, known); err != nil {
		return nil, false, err
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if _, ok := known[h]; !ok {
			msg := fmt.Sprintf("unknown column %q", h)
			if hint := suggest(h, known); hint != "" {
				msg += hint
			}
			return nil, false, &ConfigError{File: path, Line: 1, Key: h, Msg: msg}
		}
		if _, dup := col[h]; dup {
			return nil, false, &ConfigError{File: path, Line: 1, Key: h, Msg: fmt.Sprintf("column %q appears twice", h)}
		}
		col[h] = i
	}
	if _, ok := col["source_user"]; !ok {
		return nil, false, &ConfigError{File: path, Line: 1, Key: "source_user", Msg: "the header has no source_user column"}
	}
	accountKeys := schemaOf(reflect.TypeFor[fileAccount]()).children
	overrides := false // any override column: only then is each row scanned for them
	for h := range col {
		if _, ok := accountKeys[h]; !ok {
			overrides = true
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, csvError(path, err)
		}
		line, _ := cr.FieldPos(0)
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return rec[i]
			}
			return ""
		}
		a := Account{
			Name:       get("name"),
			ID:         get("id"),
			SourceUser: get("source_user"),
			SourcePassword: secretSource(dir, secret.New(get("source_password")),
				get("source_password_env"), get("source_password_file"), get("source_password_command")),
			DestUser: get("dest_user"),
			DestPassword: secretSource(dir, secret.New(get("dest_password")),
				get("dest_password_env"), get("dest_password_file"), get("dest_password_command")),
			DestFolder: get("dest_folder"),
			Origin:     fmt.Sprintf("%s:%d", path, line),
			pos:        position{File: path, Line: line},
		}
		if a.SourceUser == "" {
			return nil, false, &ConfigError{File: path, Line: line, Key: "source_user", Msg: "source_user is empty"}
		}
		a.csv = true
		if overrides {
			var src fileSource
			var dst fileDestSettings
			ok, err := overrideCells(reflect.ValueOf(&src).Elem(), csvPrefix("source"), get, a.pos)
			if err != nil {
				return nil, false, err
			}
			if ok {
				a.srcOver = &src.fileServer
			}
			if ok, err = overrideCells(reflect.ValueOf(&dst).Elem(), csvPrefix("destination"), get, a.pos); err != nil {
				return nil, false, err
			}
			if ok {
				a.dstOver = &dst
			}
		}
		if a.DeletePolicy, err = csvDeletePolicy(get("delete_source"), get("delete_after")); err != nil {
			return nil, false, &ConfigError{File: path, Line: line, Msg: err.Error(), Err: err}
		}
		if v := strings.TrimSpace(get("mirror")); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, false, &ConfigError{File: path, Line: line, Msg: fmt.Sprintf("mirror must be true or false, got %q", v)}
			}
			a.Mirror = &b
		}
		// Folder names may hold commas, hardly semicolons: the cell
		// separates them by ";".
		for _, f := range strings.Split(get("mirror_allow_empty"), ";") {
			if f = strings.TrimSpace(f); f != "" {
				a.MirrorAllowEmpty = append(a.MirrorAllowEmpty, f)
			}
		}
		if a.limits, err = csvLimits(get); err != nil {
			return nil, false, &ConfigError{File: path, Line: line, Msg: err.Error(), Err: err}
		}
		inline = inline || !a.SourcePassword.Inline.IsZero() || !a.DestPassword.Inline.IsZero() || a.hasInlineMaster()
		fillAccountDefaults(&a)
		accts = append(accts, a)
	}
	return accts, inline, nil
}

// csvError turns an encoding/csv error into a *ConfigError. csv.ParseError
// never quotes field contents, so no password leaks through it.
func csvError(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = "wrong number of fields (every row needs one per header column; quote fields that contain commas)"
		}
		return &ConfigError{File: path, Line: pe.StartLine, Col: pe.Column, Msg: msg, Err: err}
	}
	return &ConfigError{File: path, Msg: err.Error(), Err: err}
}

// csvDeletePolicy reads the delete_source and delete_after cells of a row;
// empty cells mean "not set".
func csvDeletePolicy(deleteSource, deleteAfter string) (*DeletePolicy, error) {
	var ds *bool
	var da *Duration
	if v := strings.TrimSpace(deleteSource); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("delete_source must be true or false, got %q", v)
		}
		ds = &b
	}
	if v := strings.TrimSpace(deleteAfter); v != "" {
		da = new(Duration)
		if err := da.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("delete_after: %w", err)
		}
	}
	return accountDeletePolicy(ds, da), nil
}

// csvLimits reads a row's traffic cells; nil when it has none.
func csvLimits(get func(string) string) (*fileLimits, error) {
	var f fileLimits
	for _, r := range []struct {
		col string
		dst **RateText
	}{{"bwlimit_read", &f.BWLimitRead}, {"bwlimit_write", &f.BWLimitWrite}, {"max_messages_per_second", &f.MaxMessagesPerSecond}} {
		if v := strings.TrimSpace(get(r.col)); v != "" {
			rt := RateText(v)
			*r.dst = &rt
		}
	}
	for _, q := range []struct {
		col string
		dst **DailyBytes
	}{{"max_bytes_per_day", &f.MaxBytesPerDay}, {"max_bytes_per_day_read", &f.MaxBytesPerDayRead}, {"max_bytes_per_day_write", &f.MaxBytesPerDayWrite}} {
		if v := strings.TrimSpace(get(q.col)); v != "" {
			d := new(DailyBytes)
			if err := d.UnmarshalText([]byte(v)); err != nil {
				return nil, fmt.Errorf("%s: %w", q.col, err)
			}
			*q.dst = d
		}
	}
	if f.isZero() {
		return nil, nil
	}
	return &f, nil
}

// separatorError says so when the header is one cell that another
// separator splits into known columns: a spreadsheet that saved
// "CSV" with semicolons (as in locales with a decimal comma) or tabs.
func separatorError(path string, header []string, known map[string]*schema) error {
	if len(header) != 1 {
		return nil
	}
	for _, sep := range []struct{ char, name string }{{";", "semicolons"}, {"\t", "tabs"}} {
		cells := strings.Split(header[0], sep.char)
		if len(cells) < 2 {
			continue
		}
		if _, ok := known[strings.TrimSpace(cells[0])]; !ok {
			continue
		}
		return &ConfigError{File: path, Line: 1, Msg: fmt.Sprintf(
			"the columns are separated by %s (%q), not commas: save the file as comma-separated CSV (in a spreadsheet: \"CSV (comma delimited)\"), or replace the %s", sep.name, sep.char, sep.name)}
	}
	return nil
}
