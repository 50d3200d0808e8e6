#!/bin/bash
# Builds the Debian package with dpkg-deb from the repository: the binary (built as the
# tests build it, so CI reuses their build cache; it links libc), the systemd unit, the man pages, the example config and the
# maintainer scripts from dist/. `make deb`; prints the .deb's path.
# OUT (default bin/) is where the package goes; VERSION defaults to git describe.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bin}
GO=${GO:-go}
arch=$(dpkg --print-architecture)
case "$arch" in amd64|arm64|riscv64|ppc64el|s390x) ;; *) echo "build-deb: unsupported architecture $arch" >&2; exit 1;; esac
goarch=${arch/ppc64el/ppc64le}
if [ -z "${VERSION:-}" ]; then
  VERSION=$(git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//; s/-/+git/; s/-/./g' || true)
  [ -n "$VERSION" ] || VERSION="0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short HEAD)"
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/usher" \
  "$root/usr/share/man/man8" "$root/usr/share/man/man5" "$root/usr/share/doc/usher/examples"
GOOS=linux GOARCH=$goarch "$GO" build -ldflags "-s -w -X main.version=$VERSION" \
  -o "$root/usr/bin/usher" ./cmd/usher
install -m 0644 dist/usher.service "$root/lib/systemd/system/usher.service"
install -m 0640 dist/usher.conf "$root/etc/usher/usher.conf"
install -m 0644 dist/usher.conf "$root/usr/share/doc/usher/examples/usher.conf"
gzip -9n <dist/man/usher.8 >"$root/usr/share/man/man8/usher.8.gz"
gzip -9n <dist/man/usher.conf.5 >"$root/usr/share/man/man5/usher.conf.5.gz"
for f in README.md docs/config.md docs/cluster.md docs/api.md docs/cli.md docs/migrating-from-dovecot.md; do
  install -m 0644 "$f" "$root/usr/share/doc/usher/"
done
cat >"$root/usr/share/doc/usher/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: usher
Source: https://github.com/usher-mail/usher
COPY
install -m 0644 dist/deb/conffiles "$root/DEBIAN/conffiles"
install -m 0755 dist/deb/postinst dist/deb/prerm dist/deb/postrm "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" dist/deb/control >"$root/DEBIAN/control"

mkdir -p "$OUT"
deb="$OUT/usher_${VERSION}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "$deb"
