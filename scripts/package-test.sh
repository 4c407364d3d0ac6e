#!/usr/bin/env bash
# The package test (scripts/test.sh runs it last; docs/testing.md): builds the
# .deb and the .rpm with scripts/package.sh, installs the .deb into this
# machine with dpkg -i, checks what it installed (mailferry version, man -w
# mailferry, systemd-analyze verify on the units, nothing enabled), then
# removes and purges it and checks that it is gone.
#
# It changes the machine, so it runs only as root, and only when no
# mailferry is installed already (a package, or a file at /usr/bin/mailferry):
# it never replaces or removes an admin's mailferry. Otherwise it skips with a
# message; under CI=true a skip is a failure. What it created and the package
# does not remove (the mailferry user) it removes itself.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

skip() {
	if [[ ${CI:-} == true ]]; then
		echo "package-test: FAIL: $*" >&2
		exit 1
	fi
	echo "package-test: skipped: $*" >&2
	exit 0
}
fail() {
	echo "package-test: FAIL: $*" >&2
	exit 1
}
[[ $(id -u) -eq 0 ]] || skip "installing a package needs root (CI runs this as root)"
command -v dpkg >/dev/null || skip "no dpkg on this machine"
if dpkg-query -W -f='${Status}' mailferry 2>/dev/null | grep -q installed; then
	skip "a mailferry package is installed here; this test would replace it"
fi
[[ ! -e /usr/bin/mailferry ]] || skip "/usr/bin/mailferry exists; this test would overwrite it"

had_user=false
getent passwd mailferry >/dev/null && had_user=true
work=$(mktemp -d "${TMPDIR:-/tmp}/mailferry-package-test.XXXXXX")
installed=false
cleanup() {
	if $installed; then dpkg -P mailferry >/dev/null 2>&1 || true; fi
	if ! $had_user && getent passwd mailferry >/dev/null; then
		userdel mailferry >/dev/null 2>&1 || true
		getent group mailferry >/dev/null && groupdel mailferry >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

t0=$EPOCHREALTIME
step() {
	awk -v what="$1" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "package-test: %-44s %5.1fs\n", what, b - a }' >&2
	t0=$EPOCHREALTIME
}

deb="" rpm=""
for p in $(scripts/package.sh "$work/dist"); do
	case $p in
	*.deb) deb=$p ;;
	*.rpm) rpm=$p ;;
	esac
done
[[ -s $deb && -s $rpm ]] || fail "scripts/package.sh made no .deb and .rpm"
step "built $(basename "$deb") and the .rpm"

installed=true
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i $deb"; }
step "dpkg -i"

# The binary, with the version the package was built from.
want=$(git describe --tags --always --dirty --abbrev=7)
mailferry version >"$work/version" || fail "mailferry version"
grep -qx "mailferry $want" "$work/version" || fail "mailferry version printed $(cat "$work/version"), want mailferry $want"
grep -qx "commit:    $(git rev-parse HEAD)" "$work/version" || fail "mailferry version: wrong commit: $(cat "$work/version")"
grep -q '^built: *[0-9]\{4\}-' "$work/version" || fail "mailferry version: no build date: $(cat "$work/version")"
# The man page, found by man and formatted without a warning.
[[ $(man -w mailferry) == /usr/share/man/man1/mailferry.1.gz ]] || fail "man -w mailferry: $(man -w mailferry 2>&1)"
zcat /usr/share/man/man1/mailferry.1.gz | groff -man -Tutf8 -ww -z 2>"$work/groff" && [[ ! -s $work/groff ]] ||
	fail "the installed man page: $(cat "$work/groff")"
# The completions where each shell looks for them, and what they complete.
for f in /usr/share/bash-completion/completions/mailferry /usr/share/zsh/vendor-completions/_mailferry \
	/usr/share/fish/vendor_completions.d/mailferry.fish; do
	[[ -s $f ]] || fail "no $f"
done
bash -n /usr/share/bash-completion/completions/mailferry || fail "bash -n on the bash completion"
# The example config loads.
[[ -s /usr/share/doc/mailferry/migrate.toml.example && -s /usr/share/doc/mailferry/docs/configuration.md ]] ||
	fail "no example config or docs under /usr/share/doc/mailferry"
getent passwd mailferry >/dev/null || fail "no mailferry user"
[[ $(stat -c '%a %U %G' /etc/mailferry) == "750 root mailferry" ]] || fail "/etc/mailferry: $(stat -c '%a %U %G' /etc/mailferry)"
step "checked the binary, man page, completions, docs"

units=(mailferry-fetch.service mailferry-fetch.timer mailferry.service mailferry@.service)
for u in "${units[@]}"; do
	[[ -s /usr/lib/systemd/system/$u ]] || fail "no unit /usr/lib/systemd/system/$u"
done
# Installed, not enabled.
if compgen -G "/etc/systemd/system/*.wants/mailferry*" >/dev/null; then
	fail "the package enabled units: $(ls /etc/systemd/system/*.wants/mailferry*)"
fi
if command -v systemd-analyze >/dev/null; then
	# A template is verified through an instance of it.
	cp /usr/lib/systemd/system/mailferry@.service "$work/mailferry@example.service"
	systemd-analyze verify /usr/lib/systemd/system/mailferry-fetch.service /usr/lib/systemd/system/mailferry-fetch.timer \
		/usr/lib/systemd/system/mailferry.service "$work/mailferry@example.service" >"$work/verify" 2>&1 ||
		{ cat "$work/verify" >&2; fail "systemd-analyze verify"; }
	if grep -i mailferry "$work/verify" >&2; then fail "systemd-analyze verify complained about the units"; fi
	step "systemd-analyze verify on ${#units[@]} units"
else
	echo "package-test: no systemd-analyze here: units not verified" >&2
fi

dpkg -r mailferry >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r mailferry"; }
[[ ! -e /usr/bin/mailferry && ! -e /usr/lib/systemd/system/mailferry.service ]] || fail "dpkg -r left files behind"
dpkg -P mailferry >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -P mailferry"; }
installed=false
if dpkg-query -W mailferry >/dev/null 2>&1 && dpkg-query -W -f='${Status}' mailferry | grep -qv not-installed; then
	fail "mailferry still known to dpkg after the purge: $(dpkg-query -W -f='${Status}' mailferry)"
fi
step "dpkg -r, dpkg -P"
echo "package-test: OK: $(basename "$deb") installs, works and removes cleanly"
