#!/usr/bin/env bash
# The soak test (issue 5, part 6; README "Testing"): rounds of new mail and
# random faults (cut, reset, stalled, slowed connections, injected BYE and
# -ERR lines, SIGKILL at crashpoints) against two private Dovecot instances
# with ten accounts, for the given duration, checking after every run that
# nothing was lost or duplicated and at the end that goroutines, heap and
# the child processes' peak RSS stayed flat. Prints a summary table.
#
# Usage: scripts/soak.sh [DURATION]      (default 1h; e.g. 4m, 90m)
#        MAILFERRY_SOAK_SEED=N scripts/soak.sh 1h   (replay a run's draws)
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-1h}"
if [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/bin/doveadm ]; then
  echo "soak.sh: installing Dovecot (dovecot-imapd, dovecot-pop3d) from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dovecot-imapd dovecot-pop3d >/dev/null
fi

# The test starts no new round once the duration is spent; the last round
# and the checks need a little longer, hence twice the duration plus ten
# minutes as go test's timeout.
if [[ ! "$duration" =~ ^([0-9]+)(s|m|h)$ ]]; then
  echo "soak.sh: want a duration such as 4m, 90m or 1h, got \"$duration\"" >&2
  exit 2
fi
n="${BASH_REMATCH[1]}"
case "${BASH_REMATCH[2]}" in
  s) seconds=$n ;;
  m) seconds=$((n * 60)) ;;
  h) seconds=$((n * 3600)) ;;
esac
exec env MAILFERRY_SOAK="$duration" CI=true go test -run '^TestSoak$' -count 1 -timeout "$((2 * seconds + 600))s" -v ./cmd/mailferry
