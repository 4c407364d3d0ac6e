#!/bin/sh
# After removal (deb: postrm, rpm: %postun): systemd forgets the units; a
# purge removes /etc/mailferry when it is empty. The mailferry user and the
# checkpoints under /var/lib/mailferry stay: a checkpoint is the record of
# what was moved, and a reinstall picks it up.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ] && [ -d /etc/mailferry ]; then
	rmdir --ignore-fail-on-non-empty /etc/mailferry
fi
exit 0
