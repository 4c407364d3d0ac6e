#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this).
# Installs what the tests need — Dovecot's IMAP and POP3 servers from
# Debian's packages — when missing, then runs gofmt, vet, and the whole test
# suite, real-server tests included, under the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/bin/doveadm ]; then
  echo "test.sh: installing Dovecot (dovecot-imapd, dovecot-pop3d) from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dovecot-imapd dovecot-pop3d >/dev/null
fi

# The real-world message corpus, when the workspace has it beside the repo.
if [ -z "${MAILFERRY_CORPUS:-}" ] && [ -d ../shared/corpus/real ]; then
  MAILFERRY_CORPUS="$(cd ../shared/corpus/real && pwd)"
  export MAILFERRY_CORPUS
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "test.sh: gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
# One run, every package under the race detector: nearly all of them start
# goroutines (go-imap's reader, the engine's workers and sessions, the
# service's schedulers, the command's signal and progress handling), and
# cmd/mailferry's end-to-end tests drive them together, its subprocess tests
# with the race-instrumented binary. On the 2-core machine, shared with
# other test runs, the whole script took 429 s (load 3 to 12) against 279 s
# (load 12 to 7) for the former race run on five packages plus a plain run
# of everything; cmd/mailferry is most of either (400 s, 259 s). -timeout is
# per package.
go test -race -timeout 30m ./...
