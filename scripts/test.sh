#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this).
# Installs what the tests need from Debian's packages when missing (Dovecot's
# IMAP and POP3 servers, PostgreSQL, zsh, fish, groff, Chromium) and the other servers of the
# interop kits into a private prefix (scripts/install-servers.sh), then runs
# gofmt, vet, the package test (build the .deb and .rpm, install the .deb,
# check it, remove it: only as root, which CI is; see
# scripts/package-test.sh), and the whole test suite, real-server tests
# included, under the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

# Dovecot for the real-server tests, PostgreSQL's server binaries for the
# PostgreSQL checkpoint's tests (each test starts a private instance:
# internal/testkit/postgres), zsh and fish for the completion tests, groff
# for the man page test, headless Chromium for the status page's browser
# test (under CI=true a missing browser fails that test), isync's mbsync
# for the benchmark's side by side test.
need=()
{ [ -x /usr/sbin/dovecot ] && [ -x /usr/bin/doveadm ]; } || need+=(dovecot-imapd dovecot-pop3d)
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && [ -z "${MAILFERRY_PG_BIN:-}" ]; then
  need+=(postgresql)
  # The tests need the binaries only, not the system-wide cluster the
  # package would create and start.
  if [ "$(id -u)" -eq 0 ] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
  fi
fi
command -v mbsync >/dev/null || need+=(isync)
command -v zsh >/dev/null || need+=(zsh)
command -v fish >/dev/null || need+=(fish)
command -v groff >/dev/null || need+=(groff-base)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]} from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The other IMAP and POP3 servers of the interop kits (Cyrus, Courier,
# GNU Mailutils), unpacked into a private prefix, never installed.
scripts/install-servers.sh

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
# Before the suite, so that the suite's summary closes the output.
scripts/package-test.sh
# One run, every package under the race detector: nearly all of them start
# goroutines (go-imap's reader, the engine's workers and sessions, the
# service's schedulers, the command's signal and progress handling), and
# cmd/mailferry's end-to-end tests drive them together, its subprocess tests
# with the race-instrumented binary. On the 2-core machine, shared with
# other test runs, the whole script took 429 s (load 3 to 12) against 279 s
# (load 12 to 7) for the former race run on five packages plus a plain run
# of everything; cmd/mailferry is most of either (400 s, 259 s). -timeout is
# per package: cmd/mailferry takes about 18 minutes on the quiet machine
# (1,095 s at b8da5b9) but took 29 (1,738 s) while benchmarks shared it, so
# the guard against a hung test is 50 minutes, inside CI's 90.
go test -race -timeout 50m ./...
