// Package suggest finds, for a name the user typed that is not there (a
// folder, a flag), the existing names closest to it, so that an error can
// say "did you mean". Names are compared by edit distance (Levenshtein,
// on runes), case-insensitively: a typo or a wrong case is one or two
// edits away.
package suggest

import (
	"sort"
	"strings"
)

// Closest returns up to n of candidates closest to name: those within a
// small edit distance (a third of name's length, at least 2), nearest
// first, ties in the candidates' order. Duplicates count once. None is
// close enough: nil.
func Closest(name string, candidates []string, n int) []string {
	want := []rune(strings.ToLower(name))
	limit := max(2, len(want)/3)
	type scored struct {
		name string
		dist int
		i    int
	}
	var found []scored
	seen := map[string]bool{}
	for i, c := range candidates {
		if seen[c] {
			continue
		}
		seen[c] = true
		if d := distance(want, []rune(strings.ToLower(c))); d <= limit {
			found = append(found, scored{c, d, i})
		}
	}
	sort.SliceStable(found, func(a, b int) bool { return found[a].dist < found[b].dist })
	var out []string
	for _, f := range found {
		if len(out) == n {
			break
		}
		out = append(out, f.name)
	}
	return out
}

// Distance is the Levenshtein distance of a and b, counted in runes: the
// fewest insertions, deletions and substitutions that turn one into the
// other (the config loader's "did you mean" for keys uses it too).
func Distance(a, b string) int { return distance([]rune(a), []rune(b)) }

// distance is the Levenshtein distance of a and b: the fewest insertions,
// deletions and substitutions that turn one into the other.
func distance(a, b []rune) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Quote returns names as a list for a message: "A", "B" or "C".
func Quote(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + n + `"`
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
