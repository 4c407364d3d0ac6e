#!/usr/bin/env bash
# Installs the IMAP and POP3 servers of the interop tests (issue 15) into a
# private prefix, never into the system: Cyrus, Courier and GNU Mailutils
# conflict with Dovecot's packages (imap-server, pop3-server) and their
# maintainer scripts would start system daemons. So their .debs are fetched
# with `apt-get download` and unpacked with `dpkg -x`, one directory per
# server family, and the test kits (internal/testkit/{cyrus,courier,
# mailutils}) run the binaries from there with LD_LIBRARY_PATH.
# Only plain shared libraries they link against are installed with apt-get.
#
# docs/interop-servers.md describes the kits and each server's quirks.
#
# Prefix: $MAILFERRY_SERVERS, else /var/cache/mailferry/servers as root (the
# servers drop privileges to nobody, who cannot enter /root), else
# ${XDG_CACHE_HOME:-~/.cache}/mailferry/servers. The kits use the same rule
# (internal/testkit/mailserver.Prefix).
#
# Idempotent: a second run with the same package list only checks a stamp
# file and the libraries and exits. scripts/test.sh calls it.
set -euo pipefail

if [ -n "${MAILFERRY_SERVERS:-}" ]; then
  prefix="$MAILFERRY_SERVERS"
elif [ "$(id -u)" -eq 0 ]; then
  prefix=/var/cache/mailferry/servers
else
  prefix="${XDG_CACHE_HOME:-$HOME/.cache}/mailferry/servers"
fi

# family: the packages unpacked into $prefix/<family>.
declare -A families=(
  [cyrus]="cyrus-common cyrus-imapd cyrus-pop3d sasl2-bin"
  [courier]="courier-base courier-imap courier-pop courier-authlib courier-authdaemon courier-authlib-userdb"
  [mailutils]="mailutils-common libmailutils9 libmu-dbm9 mailutils-imap4d mailutils-pop3d"
)
# Shared libraries the unpacked binaries need that a minimal Debian 12 lacks
# (found with ldd). None of them conflicts with anything or starts a daemon.
libs="libpcre3 libxapian30 libical3 libidn12 libcourier-unicode4 libgamin0 libltdl7
  libgsasl18 libmariadb3 libkyotocabinet16v5 libsasl2-2 libsasl2-modules libsasl2-modules-db
  libwrap0 libgdbm6 libdb5.3 libjansson4 libicu72 libpq5 libldap-2.5-0 libnsl2 libunistring2"

stamp_want="v1 $(for f in $(printf '%s\n' "${!families[@]}" | sort); do echo "$f=${families[$f]}"; done | tr '\n' ' ')"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

missing_libs() {
  # dpkg-query prints "install ok installed" per installed package.
  local l out=""
  for l in $libs; do
    dpkg-query -W -f='${Status}' "$l" 2>/dev/null | grep -q 'ok installed' || out="$out $l"
  done
  echo "$out"
}

need=$(missing_libs)
if [ -f "$prefix/stamp" ] && [ "$(cat "$prefix/stamp")" = "$stamp_want" ] && [ -z "$need" ]; then
  exit 0
fi

start=$(date +%s)
updated=no
apt_update() {
  if [ "$updated" = no ]; then
    $sudo apt-get update -qq
    updated=yes
  fi
}

if [ -n "$need" ]; then
  echo "install-servers.sh: installing libraries:$need" >&2
  apt_update
  # shellcheck disable=SC2086 # word splitting wanted
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

mkdir -p "$prefix"
chmod 755 "$prefix"
tmp=$(mktemp -d "$prefix/.dl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
versions="$tmp/versions"
: >"$versions"
for fam in $(printf '%s\n' "${!families[@]}" | sort); do
  pkgs=${families[$fam]}
  echo "install-servers.sh: fetching $fam ($pkgs)" >&2
  mkdir -p "$tmp/debs/$fam" "$tmp/root/$fam"
  # apt-get download writes into the current directory; as root it warns
  # that _apt cannot write there, which is harmless.
  # shellcheck disable=SC2086
  if ! (cd "$tmp/debs/$fam" && apt-get download -qq $pkgs 2>/dev/null); then
    apt_update
    # shellcheck disable=SC2086
    (cd "$tmp/debs/$fam" && apt-get download -qq $pkgs 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  fi
  for pkg in $pkgs; do
    deb=$(ls "$tmp/debs/$fam/${pkg}_"*.deb 2>/dev/null | head -1)
    if [ -z "$deb" ]; then
      echo "install-servers.sh: apt-get download $pkg produced no .deb" >&2
      exit 1
    fi
    dpkg -x "$deb" "$tmp/root/$fam"
    echo "$fam $pkg $(dpkg-deb -f "$deb" Version)" >>"$versions"
  done
  chmod -R a+rX "$tmp/root/$fam"
done

# Swap in the new trees; a concurrent reader sees the old or the new one.
for fam in "${!families[@]}"; do
  rm -rf "$prefix/$fam.old"
  [ -d "$prefix/$fam" ] && mv "$prefix/$fam" "$prefix/$fam.old"
  mv "$tmp/root/$fam" "$prefix/$fam"
  rm -rf "$prefix/$fam.old"
done
mv "$versions" "$prefix/versions"
echo "$stamp_want" >"$prefix/stamp"
echo "install-servers.sh: servers in $prefix ($(($(date +%s) - start))s)" >&2
