#!/bin/bash
# Installs a built .deb on a clean Debian 12: a minbase debootstrap of bookworm (made once from
# the mirror this machine's apt already uses, then kept as a tarball in /var/cache/usher-test),
# unpacked afresh for every run. dpkg -i, then apt-get -f install when dpkg left dependencies
# open, then the same checks as on the host: installed, the usher user and state directory made
# by postinst, `usher config check` on the example config as the usher user, and a purge that
# leaves nothing. Run as root by scripts/test-deb.sh with the .deb's path.
set -euo pipefail
log() { echo "test-deb-clean: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }
deb=${1:?usage: test-deb-clean.sh PACKAGE.deb}
command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/test-deps.sh installs it)"

cache=/var/cache/usher-test/bookworm-minbase.tar
if [ ! -s "$cache" ]; then
  # The mirror of the host's own apt sources (deb822 or one-line format): no address is
  # written here.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources"
  mkdir -p "$(dirname "$cache")"
  base=$(mktemp -d)
  log "making a clean bookworm (debootstrap --variant=minbase, once; cached in $cache)"
  debootstrap --variant=minbase bookworm "$base" "$mirror" >"$base.log" 2>&1 || { tail -5 "$base.log" >&2; rm -rf "$base" "$base.log"; die "debootstrap failed"; }
  tar -C "$base" -cf "$cache.tmp" . && mv "$cache.tmp" "$cache"
  rm -rf "$base" "$base.log"
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$cache"
chmod 0755 "$root"  # mktemp's 0700 (also in the tarball's "./"): the usher user must traverse /
cp /etc/resolv.conf "$root/etc/resolv.conf"  # apt-get -f install may need the mirror
cp "$deb" "$root/tmp/usher.deb"
inroot() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

if ! inroot dpkg -i /tmp/usher.deb >/dev/null 2>&1; then
  log "dpkg -i left dependencies open; apt-get -f install resolves them"
  inroot apt-get update -q >/dev/null
  inroot apt-get -f install -y -q </dev/null >/dev/null
fi
[ "$(inroot dpkg-query -W -f='${Status}' usher)" = "install ok installed" ] || die "usher is not installed in the clean system"
inroot getent passwd usher >/dev/null || die "postinst did not create the usher user"
[ "$(inroot stat -c '%U:%G %a' /var/lib/usher)" = "usher:usher 750" ] || die "/var/lib/usher: $(inroot stat -c '%U:%G %a' /var/lib/usher)"
inroot runuser -u usher -- /usr/bin/usher config check -c /etc/usher/usher.conf >/dev/null || die "usher config check failed in the clean system"
inroot dpkg --purge usher >/dev/null
for p in /usr/bin/usher /etc/usher /var/lib/usher; do
  [ ! -e "$root$p" ] || die "$p is left after dpkg --purge in the clean system"
done
! inroot getent passwd usher >/dev/null || die "the usher user is left after dpkg --purge in the clean system"
log "ok: installed, checked and purged on a clean bookworm"
