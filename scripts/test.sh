#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this).
# Installs what the tests need — Dovecot's IMAP and POP3 servers and
# Chromium, from Debian's packages — when missing, then runs vet, the race
# detector on the concurrent packages, and the whole test suite, real-server
# tests included.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/bin/doveadm ]; then
  echo "test.sh: installing Dovecot (dovecot-imapd, dovecot-pop3d) from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dovecot-imapd dovecot-pop3d >/dev/null
fi

# Headless Chromium for the status page's browser test (under CI=true a
# missing browser fails that test).
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: installing Chromium from Debian's packages (the status page's browser test)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
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
go test -race -timeout 15m ./pipeline/... ./imapdst/... ./checkpoint/... ./spool/... ./internal/idleconn/... ./statuspage/... ./notify/...
go test -timeout 30m ./...
