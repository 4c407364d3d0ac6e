#!/usr/bin/env bash
# demo.sh — try mailferry in a minute, on this machine only.
#
# Starts two private Dovecot servers on free ports of 127.0.0.1 ("old": the
# POP3 source, seeded with 50 sample messages for alice; "new": the IMAP
# destination), copies alice's mail from old to new with
#   mailferry copy pop3s://alice@127.0.0.1:PORT imaps://alice@127.0.0.1:PORT2 \
#     --tls-ca CA --state STATE
# then runs the same command again to show that nothing is copied twice, and
# stops both servers on exit. Installs Dovecot from Debian packages if needed.
#
# Usage: scripts/demo.sh   (from anywhere in the checkout; needs Go)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

as_root() {
	if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

if [[ ! -x /usr/sbin/dovecot ]]; then
	echo "==> Installing Dovecot (dovecot-imapd, dovecot-pop3d)"
	as_root apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd dovecot-pop3d
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/mailferry-demo.XXXXXX")
# Dovecot's unprivileged processes must be able to traverse the directory.
chmod 755 "$workdir"
env_pid=""

cleanup() {
	local rc=$?
	if [[ -n $env_pid ]] && kill -0 "$env_pid" 2>/dev/null; then
		echo "==> Stopping the demo servers"
		kill -TERM "$env_pid" 2>/dev/null || true
		wait "$env_pid" 2>/dev/null || true
	fi
	rm -rf "$workdir"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> Building mailferry and the demo server launcher"
go build -o "$workdir/bin/mailferry" ./cmd/mailferry
go build -o "$workdir/bin/mailferry-demo-servers" ./cmd/mailferry-demo-servers

echo "==> Starting two private Dovecot servers under $workdir/servers"
"$workdir/bin/mailferry-demo-servers" -dir "$workdir/servers" -env-file "$workdir/env.sh" \
	>/dev/null 2>"$workdir/servers.log" &
env_pid=$!
for _ in $(seq 1 300); do
	[[ -f $workdir/env.sh ]] && break
	if ! kill -0 "$env_pid" 2>/dev/null; then
		echo "demo: the Dovecot servers did not start:" >&2
		cat "$workdir/servers.log" >&2
		exit 1
	fi
	sleep 0.1
done
if [[ ! -f $workdir/env.sh ]]; then
	echo "demo: the Dovecot servers were not ready after 30s:" >&2
	cat "$workdir/servers.log" >&2
	exit 1
fi
# Ports, CA file, and alice's passwords as MAILFERRY_SOURCE_PASSWORD and
# MAILFERRY_DEST_PASSWORD (mailferry reads them from the environment).
# shellcheck source=/dev/null
source "$workdir/env.sh"

src="pop3s://$DEMO_USER@127.0.0.1:$SOURCE_POP3S_PORT"
dst="imaps://$DEMO_USER@127.0.0.1:$DEST_IMAPS_PORT"
state="$workdir/state.db"

count() {
	doveadm -c "$1" -f tab mailbox status -u "$DEMO_USER" messages INBOX | tail -n 1 | cut -f 2
}

copy() {
	echo "\$ mailferry copy $src $dst --tls-ca $DEMO_CA_FILE --state $state"
	local rc=0
	"$workdir/bin/mailferry" copy "$src" "$dst" --tls-ca "$DEMO_CA_FILE" --state "$state" || rc=$?
	if [[ $rc -ne 0 ]]; then
		echo "demo: mailferry copy exited with status $rc" >&2
		exit "$rc"
	fi
}

echo "==> Source (POP3) INBOX: $(count "$SOURCE_DOVECOT_CONFIG") messages; destination (IMAP) INBOX: $(count "$DEST_DOVECOT_CONFIG") messages"
echo
echo "==> First run: copies every message"
copy
echo "==> Destination INBOX now holds $(count "$DEST_DOVECOT_CONFIG") messages"
echo
echo "==> Second run: the checkpoint knows them all, nothing is copied again"
copy
echo "==> Destination INBOX still holds $(count "$DEST_DOVECOT_CONFIG") messages"
