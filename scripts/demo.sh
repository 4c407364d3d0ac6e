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
# With --keep the servers stay up afterwards, so that you can try other
# commands against them (verify, plan, status, an IMAP-to-IMAP copy): the
# script prints their ports, the user, where the passwords are, the exact
# commands to try, and how to stop the servers.
#
# Usage: scripts/demo.sh [--keep]   (from anywhere in the checkout; needs Go)
set -euo pipefail

keep=false
case "${1:-}" in
"") ;;
--keep) keep=true ;;
-h | --help)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "usage: scripts/demo.sh [--keep]" >&2
	exit 2
	;;
esac

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

kept=false
cleanup() {
	local rc=$?
	if $kept; then
		exit "$rc"
	fi
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
launch=()
if $keep; then
	# Its own session: the servers outlive this script and its terminal.
	launch=(setsid)
fi
${launch[@]+"${launch[@]}"} "$workdir/bin/mailferry-demo-servers" -dir "$workdir/servers" -env-file "$workdir/env.sh" \
	>/dev/null 2>"$workdir/servers.log" </dev/null &
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

if ! $keep; then
	exit 0
fi

# --keep: leave the servers running, say how to use them and how to stop them.
cat >"$workdir/stop.sh" <<STOP
#!/usr/bin/env bash
# Stops the demo servers of scripts/demo.sh --keep and removes $workdir.
kill -TERM $env_pid 2>/dev/null || true
for _ in \$(seq 1 100); do
	kill -0 $env_pid 2>/dev/null || break
	sleep 0.1
done
rm -rf '$workdir'
echo "demo servers stopped, $workdir removed"
STOP
chmod 755 "$workdir/stop.sh"
kept=true
imap_src="imaps://$DEMO_USER@127.0.0.1:$SOURCE_IMAPS_PORT"
cat <<EOF

==> The demo servers keep running (process $env_pid, files under $workdir)

  old (the source):  POP3S 127.0.0.1:$SOURCE_POP3S_PORT, POP3 (STLS) 127.0.0.1:$SOURCE_POP3_PORT, IMAPS 127.0.0.1:$SOURCE_IMAPS_PORT
  new (destination): IMAPS 127.0.0.1:$DEST_IMAPS_PORT, IMAP (STARTTLS) 127.0.0.1:$DEST_IMAP_PORT
  user:              $DEMO_USER on both; their passwords are MAILFERRY_SOURCE_PASSWORD and
                     MAILFERRY_DEST_PASSWORD in $workdir/env.sh
  CA certificate:    $DEMO_CA_FILE (both servers)
  checkpoint:        $state

Try, in a shell:

  source $workdir/env.sh
  export PATH=$workdir/bin:\$PATH
  mailferry status --state $state
  mailferry verify $src $dst --tls-ca $DEMO_CA_FILE --state $state
  mailferry plan $src $dst --tls-ca $DEMO_CA_FILE --state $state
  mailferry copy $imap_src $dst/Old --create-folders --tls-ca $DEMO_CA_FILE --state $state

Stop the servers and remove everything:

  $workdir/stop.sh
EOF
