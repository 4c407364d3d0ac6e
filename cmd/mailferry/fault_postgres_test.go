package main

import (
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
)

// The crash and fault suites run with the checkpoint in PostgreSQL as
// well as in SQLite (docs/testing.md "Crash and fault suites on
// PostgreSQL"): a sample of each by default, all of them with
// MAILFERRY_FAULT_ALL=1.

// crashLedgers are the checkpoints a crash suite runs with.
var crashLedgers = []string{"sqlite", "postgres"}

// onLedger reports whether case i of a crash suite runs with the
// checkpoint in ledger: every case on SQLite; on PostgreSQL the sampled
// ones (sample reports which), or every one under MAILFERRY_FAULT_ALL=1.
func onLedger(ledger string, sampled bool) bool {
	return ledger == "sqlite" || faultAll() || sampled
}

// ledgerName is a subtest's name for a case on ledger: the case's own
// on SQLite (as before there were two), "postgres-" and it on PostgreSQL.
func ledgerName(ledger, name string) string {
	if ledger == "sqlite" {
		return name
	}
	return ledger + "-" + name
}

// onPostgres moves p's checkpoint into a database of a private
// PostgreSQL server (its password handed on by p.getenv and
// runSubprocess), when ledger says so.
func onPostgres(t *testing.T, p *pair, ledger string) {
	t.Helper()
	if ledger != "postgres" {
		return
	}
	pg := postgres.Start(t, postgres.Options{})
	p.state, p.statePassword = postgres.Database(t, pg), pg.Password()
}
