#!/bin/sh
# After install or upgrade (deb: postinst, rpm: %post): the mailferry system
# user, /etc/mailferry, and systemd told about the units. Nothing is enabled
# or started: the admin writes a config first (docs/scheduled-fetching.md).
set -e
if ! getent passwd mailferry >/dev/null; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers mailferry.conf
	else
		useradd --system --user-group --home-dir /var/lib/mailferry --no-create-home \
			--shell /usr/sbin/nologin --comment "mailferry mail fetcher" mailferry
	fi
fi
if [ ! -d /etc/mailferry ]; then
	# Configs and password files here are read by the mailferry user.
	install -d -m 0750 -o root -g mailferry /etc/mailferry
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
