#!/bin/sh
# Before removal (deb: prerm remove, rpm: %preun with 0 left): stop and
# disable the units, so nothing runs a binary that is about to go. Upgrades
# leave them alone.
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now mailferry-fetch.timer mailferry-fetch.service mailferry.service >/dev/null 2>&1 || true
		systemctl stop 'mailferry@*.service' >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
