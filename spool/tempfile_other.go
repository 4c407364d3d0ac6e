//go:build !linux

package spool

import "os"

// openUnnamed reports false: only Linux has O_TMPFILE; the caller uses a
// named file removed at once.
func openUnnamed(string) (*os.File, bool) { return nil, false }
