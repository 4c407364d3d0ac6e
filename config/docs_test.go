package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// The documentation is checked against the loader: the schema derived from
// the file* types is the one list of keys, and docs/configuration.md,
// migrate.toml.example and every TOML example in docs/ and the README must
// agree with it.

// userDocs returns the README and every page under docs/, by path.
func userDocs(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths = append(paths, filepath.Join("..", "README.md"))
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = string(b)
	}
	return out
}

// loaderKeys are the keys the loader accepts, as dotted paths. An account's
// [account.source] and [account.destination] tables take any key of the
// server sections: they count as one key each.
func loaderKeys() map[string]bool {
	out := map[string]bool{}
	var walk func(sc *schema, prefix string)
	walk = func(sc *schema, prefix string) {
		for k, child := range sc.children {
			path := prefix + k
			switch {
			case child.kind == kindTable && strings.HasPrefix(prefix, "account."):
				out[path] = true
			case child.kind == kindTable || child.kind == kindArrayOfTables:
				walk(child, path+".")
			default:
				out[path] = true
			}
		}
	}
	walk(schemaOf(reflect.TypeFor[fileConfig]()), "")
	return out
}

// leafNames are the last components of every key, at any depth.
func leafNames() map[string]bool {
	out := map[string]bool{}
	var walk func(sc *schema)
	walk = func(sc *schema) {
		for k, child := range sc.children {
			out[k] = true
			walk(child)
		}
	}
	walk(schemaOf(reflect.TypeFor[fileConfig]()))
	return out
}

var codeSpanRE = regexp.MustCompile("`([^`]+)`")

// markedTable returns the code spans of the first cells of the table between
// <!-- NAME and <!-- /NAME --> in doc.
func markedTable(t *testing.T, doc, name string) []string {
	t.Helper()
	start := strings.Index(doc, "<!-- "+name)
	end := strings.Index(doc, "<!-- /"+name+" -->")
	if start < 0 || end < start {
		t.Fatalf("docs/configuration.md has no <!-- %s --> ... <!-- /%s --> table", name, name)
	}
	var out []string
	for _, line := range strings.Split(doc[start:end], "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, " | ", 2)[0]
		for _, m := range codeSpanRE.FindAllStringSubmatch(first, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func compareSets(t *testing.T, what, where string, documented []string, accepted map[string]bool) {
	t.Helper()
	doc := map[string]bool{}
	for _, k := range documented {
		if doc[k] {
			t.Errorf("%s: %s %q is listed twice", where, what, k)
		}
		doc[k] = true
		if !accepted[k] {
			t.Errorf("%s lists the %s %q, which the loader does not accept", where, what, k)
		}
	}
	var missing []string
	for k := range accepted {
		if !doc[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("the loader accepts the %s %q, which %s does not list", what, k, where)
	}
}

// TestDocsConfigKeys: the configuration reference lists exactly the keys and
// accounts-file columns the loader accepts; every TOML example in the docs
// passes the loader's key and type check; every `key = value` in inline
// code is a key; and migrate.toml.example names every key.
func TestDocsConfigKeys(t *testing.T) {
	docs := userDocs(t)
	ref := docs[filepath.Join("..", "docs", "configuration.md")]
	compareSets(t, "key", "docs/configuration.md's key table", markedTable(t, ref, "keys"), loaderKeys())
	columns := map[string]bool{}
	for k := range csvColumns() {
		columns[k] = true
	}
	compareSets(t, "accounts-file column", "docs/configuration.md's column table", markedTable(t, ref, "columns"), columns)

	tomlBlock := regexp.MustCompile("(?s)```toml\n(.*?)```")
	inlineKey := regexp.MustCompile("`([a-z_]+(?:\\.[a-z_]+)*) = [^`]*`")
	leaves := leafNames()
	fileSchema := schemaOf(reflect.TypeFor[fileConfig]())
	for path, doc := range docs {
		for _, m := range tomlBlock.FindAllStringSubmatch(doc, -1) {
			var raw map[string]any
			if _, err := toml.Decode(m[1], &raw); err != nil {
				t.Errorf("%s: a toml block does not parse: %v\n%s", path, err, m[1])
				continue
			}
			var errs errList
			checkTable(&errs, fileSchema, raw, "", "", keyPositions(m[1]), path)
			if err := errs.err(); err != nil {
				t.Errorf("%s: a toml block has keys the loader refuses: %v\n%s", path, err, m[1])
			}
		}
		for _, m := range inlineKey.FindAllStringSubmatch(doc, -1) {
			parts := strings.Split(m[1], ".")
			if !leaves[parts[len(parts)-1]] {
				t.Errorf("%s: `%s` names no config key", path, strings.TrimSuffix(m[0], "`")[1:])
			}
		}
	}

	example, err := os.ReadFile(filepath.Join("..", "migrate.toml.example"))
	if err != nil {
		t.Fatal(err)
	}
	for k := range leaves {
		if !regexp.MustCompile(`\b` + k + `\b`).Match(example) {
			t.Errorf("migrate.toml.example does not mention the key %q", k)
		}
	}
}
