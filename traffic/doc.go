// Package traffic paces the copy of each account so that a migration keeps
// to what servers and networks allow: bytes per second read from the
// source and written to the destination, messages per second, per account
// and for the whole run, each a constant or a weekly timetable
// ("Mon-Fri 08:00,2M 18:00,off Sat-Sun off") that changes while a run or
// the service goes on, "pause" in a timetable, and daily quotas of bytes
// per account (Gmail: about 2,500 MB read and 500 MB written a day).
//
// The engine asks an *Account (it implements pipeline.Traffic) before it
// opens sessions (Ready), before each message it fetches (Fetch) and each
// batch it sends (Send), and tells it the bytes as they are read and
// written (Read, Write); no Source or Destination is wrapped. Rates are
// token buckets (golang.org/x/time/rate) refilled continuously, with a
// burst of a tenth of a second of the rate, so that a minute's average is
// within a fraction of a percent of the limit and no wait inside a message
// is longer than a tenth of a second per limit. A wait that would hold
// sessions idle for longer than MaxHold (a message rate below one a
// minute, a pause, a quota) ends the engine's attempt instead
// (*pipeline.PausedError): the sessions are closed, their connection slots
// given back, and new ones opened when the account may go on; servers
// never see a connection sitting idle long enough to drop it.
//
// Time comes from a Clock: the wall clock in the program; tests hand in
// their own (the command line never reads one from the environment).
package traffic
