#!/usr/bin/env bash
# The benchmark command (issue 6; README "Performance"). Installs Dovecot's
# IMAP and POP3 servers from Debian's packages when missing, like
# scripts/test.sh, then runs cmd/mailferry-bench: private source and destination
# Dovecot instances on 127.0.0.1, seeded workloads, read and write ceilings,
# mailferry as a child process, a second run with nothing new, and the
# latency scenario through a delay proxy, for POP3 -> IMAP and IMAP -> IMAP.
# Prints one table on stdout.
#
# Usage: scripts/bench.sh [-quick] [-json FILE] [-profile DIR] [more flags]
#        scripts/bench.sh -workloads huge,rerun10k   (a 200 MB message on both
#                        paths with peak RSS; a second run on 10,000 POP3 messages)
#        scripts/bench.sh -h        (every flag)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/bin/doveadm ]; then
  echo "bench.sh: installing Dovecot (dovecot-imapd, dovecot-pop3d) from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dovecot-imapd dovecot-pop3d >/dev/null
fi

exec go run ./cmd/mailferry-bench "$@"
