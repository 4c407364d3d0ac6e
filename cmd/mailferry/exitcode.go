package main

// Exit statuses, documented under EXIT STATUS in --help. Decided in one
// place: exitCodeFor.
const (
	exitOK          = 0   // everything moved, or nothing to do
	exitFatal       = 1   // a fatal error: nothing or not everything could be tried
	exitUsage       = 2   // bad command line or configuration; nothing was touched
	exitPartial     = 3   // some messages or accounts could not be moved; the report says which
	exitInterrupted = 130 // interrupted by a signal; the next run resumes
)
