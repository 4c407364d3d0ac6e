package config

import "testing"

func TestKeyPositions(t *testing.T) {
	doc := `top = 1 # comment
"quoted key" = 'x'
ml = """
not = "a key"
"""
arr = [
  1, # not = 2
  "[x]",
]
[source]
  url = "pop3s://h"
a.b . c = { d = 1 }
[[account]]
source_user = "a"
[[account]]
source_user = 'b'
[account.extra]
k = 1
[[account]]
'lit' = "c"
`
	want := map[string]keyPos{
		"top":                    {line: 1, col: 1, valCol: 7},
		"quoted key":             {line: 2, col: 1, valCol: 16},
		"ml":                     {line: 3, col: 1, valCol: 6},
		"arr":                    {line: 6, col: 1, valCol: 7},
		"source":                 {line: 10, col: 1},
		"source.url":             {line: 11, col: 3, valCol: 9},
		"source.a":               {line: 12, col: 1, valCol: 11},
		"source.a.b.c":           {line: 12, col: 1, valCol: 11},
		"account":                {line: 13, col: 1},
		"account[0]":             {line: 13, col: 1},
		"account[0].source_user": {line: 14, col: 1, valCol: 15},
		"account[1].source_user": {line: 16, col: 1, valCol: 15},
		"account[1].extra":       {line: 17, col: 1},
		"account[1].extra.k":     {line: 18, col: 1, valCol: 5},
		"account[2]":             {line: 19, col: 1},
		"account[2].lit":         {line: 20, col: 1, valCol: 9},
	}
	got := keyPositions(doc)
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("keyPositions[%q] = %+v (found %v), want %+v", k, g, ok, w)
		}
	}
	for _, k := range []string{"not", "source.not", "x"} {
		if _, ok := got[k]; ok {
			t.Errorf("keyPositions found %q inside a string or array", k)
		}
	}
}
