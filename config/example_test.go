package config

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// schemaKeys returns the dotted path of every key in sc.
func schemaKeys(sc *schema, prefix string) []string {
	var out []string
	for name, child := range sc.children {
		path := prefix + name
		out = append(out, path)
		out = append(out, schemaKeys(child, path+".")...)
	}
	sort.Strings(out)
	return out
}

// TestExampleDocumentsEveryKey: migrate.toml.example says it documents
// every key; every key the loader accepts is shown there, as an assignment
// ("key = …", commented out or not) or as an entry of a comment list
// ("#   key  what it does", "#   key, other"). An account's
// [account.source] and [account.destination] take the keys of [source]
// and [destination], which the example says in so many words. It once
// lacked every, idle and metrics_addr. TestLoadExample loads it.
func TestExampleDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../migrate.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !regexp.MustCompile(`(?m)^# An account may override any key of \[source\] and \[destination\]`).MatchString(text) {
		t.Fatal("the example no longer says that an account may override any key of [source] and [destination]")
	}
	root := schemaOf(reflect.TypeFor[fileConfig]())
	keys := schemaKeys(root, "")
	if len(keys) < 50 {
		t.Fatalf("the schema has %d keys: not derived from the file types", len(keys))
	}
	for _, path := range keys {
		if regexp.MustCompile(`^account\.(source|destination)\.`).MatchString(path) {
			continue // the keys of [source] and [destination]: checked there
		}
		name := path[strings.LastIndexByte(path, '.')+1:]
		// Sections are shown by their headers; a table inside a section
		// (source.oauth2) may be shown as an inline table instead
		// ("oauth2 = { ... }", commented out or not): enabling it in the
		// example would change how its accounts log in.
		if sc := lookup(root, path); sc.kind == kindTable || sc.kind == kindArrayOfTables {
			header := regexp.MustCompile(`(?m)^\[\[?` + regexp.QuoteMeta(path) + `\]\]?$`)
			inline := regexp.MustCompile(`(?m)^\s*(# ?)?\s*` + regexp.QuoteMeta(name) + `\s*=\s*\{`)
			if !header.MatchString(text) && !(strings.Contains(path, ".") && inline.MatchString(text)) {
				t.Errorf("the example has no [%s] section", path)
			}
			continue
		}
		// A name with an underscore is not an English word: naming it
		// anywhere documents it (master_password in a sentence). A plain
		// word (every, idle, name) must be shown as a key.
		re := regexp.MustCompile(`(?m)^\s*(# ?)?\s*` + regexp.QuoteMeta(name) + `(\s*=|,|\s\s)`)
		if strings.Contains(name, "_") {
			re = regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`)
		}
		if !re.MatchString(text) {
			t.Errorf("the example does not document the key %s", path)
		}
	}
}

// lookup returns the schema of the dotted path, which sc has.
func lookup(sc *schema, path string) *schema {
	for _, part := range strings.Split(path, ".") {
		sc = sc.children[part]
	}
	return sc
}
