#!/usr/bin/env bash
# The benchmark command (issue 6; README "Performance"). Installs Dovecot's
# IMAP and POP3 servers and isync's mbsync (measured side by side with
# mailferry, as is doveadm, which comes with Dovecot) from Debian's packages
# when missing, like scripts/test.sh, then runs cmd/mailferry-bench: private
# source and destination Dovecot instances on 127.0.0.1, seeded workloads,
# read and write ceilings, mailferry as a child process beside the other
# tools, a second run with nothing new, and the latency scenario through a
# delay proxy, for POP3 -> IMAP and IMAP -> IMAP. Prints the tables on
# stdout.
#
# Usage: scripts/bench.sh [-quick] [-json FILE] [-profile DIR] [more flags]
#        scripts/bench.sh -workloads huge,rerun10k   (a 200 MB message on both
#                        paths with peak RSS; a second run on 10,000 POP3 messages)
#        scripts/bench.sh -h        (every flag)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
{ [ -x /usr/sbin/dovecot ] && [ -x /usr/bin/doveadm ]; } || need+=(dovecot-imapd dovecot-pop3d)
command -v mbsync >/dev/null || need+=(isync)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench.sh: installing ${need[*]} from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

exec go run ./cmd/mailferry-bench "$@"
