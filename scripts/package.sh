#!/usr/bin/env bash
# Builds the Debian and RPM packages of mailferry (issue 21; docs/install.md)
# from this checkout, without downloading anything but Go modules pinned in
# go.sum and tools/go.sum: the binary (version from git describe), its man
# page and bash/zsh/fish completions made by the binary itself, the example
# config and the docs under /usr/share/doc/mailferry/, and the systemd units
# (installed, not enabled). nfpm (tools/go.mod) builds both packages from
# packaging/nfpm.yaml.
#
# Usage: scripts/package.sh [OUTDIR]     (default: dist/)
# Prints the paths of the two packages.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)

# git describe: v1.2.3, v1.2.3-4-gabc1234, or abc1234 without a tag; -dirty
# with uncommitted changes. The binary prints it as is; package versions
# must start with a digit and may not contain '-' (RPM), so they become
# 1.2.3, 1.2.3+4.gabc1234, or 0.0.0+N.gabc1234 (N commits) without a tag.
describe=$(git describe --tags --always --dirty --abbrev=7)
commit=$(git rev-parse HEAD)
dirty=""
[[ $describe == *-dirty ]] && dirty=".dirty"
base=${describe%-dirty}
# A tag is a version (a dot in it); a bare abbreviated hash is not.
if [[ $base =~ ^v?([0-9]+\.[0-9][0-9A-Za-z.~]*)(-([0-9]+)-g([0-9a-f]+))?$ ]]; then
	pkgversion=${BASH_REMATCH[1]}
	[[ -n ${BASH_REMATCH[2]} ]] && pkgversion+="+${BASH_REMATCH[3]}.g${BASH_REMATCH[4]}"
else
	pkgversion="0.0.0+$(git rev-list --count HEAD).g${commit:0:7}"
fi
pkgversion+=$dirty
# The build date; SOURCE_DATE_EPOCH (reproducible builds) wins.
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)

stage=$(mktemp -d "${TMPDIR:-/tmp}/mailferry-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT

echo "==> mailferry $describe (package version $pkgversion)" >&2
# Built as the tests build it (no -trimpath, the default cgo setting), so
# the build cache serves both: in CI this is a link, not a second compile.
go build -o "$stage/mailferry" \
	-ldflags "-s -w -X main.buildVersion=$describe -X main.buildCommit=$commit -X main.buildDate=$date" \
	./cmd/mailferry
go -C tools build -o "$stage/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm

"$stage/mailferry" help --man | gzip -9n >"$stage/mailferry.1.gz"
mkdir "$stage/completions" "$stage/doc"
for shell in bash zsh fish; do
	"$stage/mailferry" completion "$shell" >"$stage/completions/mailferry.$shell"
done
cp -r packaging/systemd packaging/scripts packaging/mailferry.sysusers "$stage/"
cp migrate.toml.example README.md "$stage/doc/"
cp -r docs "$stage/doc/docs"

cd "$stage"
export MAILFERRY_VERSION=$pkgversion MAILFERRY_ARCH=$(go env GOARCH)
for packager in deb rpm; do
	./nfpm package --config "$repo/packaging/nfpm.yaml" --packager "$packager" --target "$out/" >&2
done
ls -1 "$out"/mailferry?"${pkgversion}"*.deb "$out"/mailferry-"${pkgversion}"*.rpm
