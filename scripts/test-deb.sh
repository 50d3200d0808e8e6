#!/bin/bash
# Builds the .deb (scripts/build-deb.sh), installs it with dpkg -i (then apt-get -f install, which
# resolves any missing dependency), checks what it installed (the user, the state directory, the
# example config passes `usher config check` as the usher user, the unit passes
# `systemd-analyze verify`, the man pages render without warnings), and purges it again, checking
# that nothing is left; then does it again on a clean Debian 12 (scripts/test-deb-clean.sh). Run as root; `make test` runs it (`make deb-test` alone). It refuses to
# touch an usher package it did not install.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "test-deb: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || { log "skipped: needs root (dpkg -i)"; exit 0; }

exec 9>/tmp/usher-deb.lock
flock 9  # one install at a time on this machine
if dpkg-query -W -f='${Status}' usher 2>/dev/null | grep -q installed; then
  die "a package named usher is already installed; remove it first (dpkg --purge usher)"
fi

tmp=$(mktemp -d)
purge() { dpkg --purge usher >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap purge EXIT
deb=$(OUT="$tmp" ./scripts/build-deb.sh)
log "built $deb ($(du -k "$deb" | cut -f1) KiB)"

dpkg -i "$deb" >/dev/null || log "dpkg -i left dependencies open; apt-get -f install resolves them"
DEBIAN_FRONTEND=noninteractive apt-get -f install -y -q </dev/null >/dev/null
[ "$(dpkg-query -W -f='${Status}' usher)" = "install ok installed" ] || die "usher is not installed"

getent passwd usher >/dev/null || die "postinst did not create the usher user"
[ "$(stat -c '%U:%G %a' /var/lib/usher)" = "usher:usher 750" ] || die "/var/lib/usher: $(stat -c '%U:%G %a' /var/lib/usher)"
[ "$(stat -c '%U:%G %a' /etc/usher/usher.conf)" = "root:usher 640" ] || die "/etc/usher/usher.conf: $(stat -c '%U:%G %a' /etc/usher/usher.conf)"
runuser -u usher -- /usr/bin/usher config check -c /etc/usher/usher.conf >/dev/null || die "usher config check failed on the installed example config"
/usr/bin/usher version | grep -q '^usher 0' || die "usher version: $(/usr/bin/usher version)"
# --man=no: the man pages are checked below; images that drop /usr/share/man must not fail this.
# verify exits 0 on unknown keys and bad values, which it only prints: any output is a failure.
out=$(systemd-analyze verify --man=no /lib/systemd/system/usher.service 2>&1) || die "systemd-analyze verify: $out"
[ -z "$out" ] || die "systemd-analyze verify: $out"
for page in usher.8 usher.conf.5; do
  warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "dist/man/$page" 2>&1 >/dev/null)
  [ -z "$warn" ] || die "man $page: $warn"
done

dpkg --purge usher >/dev/null
for p in /usr/bin/usher /etc/usher /var/lib/usher /lib/systemd/system/usher.service; do
  [ ! -e "$p" ] || die "$p is left after dpkg --purge"
done
! getent passwd usher >/dev/null || die "the usher user is left after dpkg --purge"
log "ok: installed, checked and purged $(basename "$deb")"

# The same package on a clean Debian 12, where nothing the tests installed is present.
./scripts/test-deb-clean.sh "$deb"
