#!/bin/bash
# Installs, when missing, what usher's tests need on Debian 12 (real Dovecot 2.3 backends, the
# real clients the end-to-end tests drive, a C toolchain for -race, Chromium, promtool and
# systemd-analyze for the service tests), and stops the system-wide Dovecot and Prometheus the
# packages start, so the tests' own instances have the machine to themselves.
# Idempotent: does nothing when everything is there. `make test` runs it first.
set -euo pipefail
log() { echo "test-deps: $*" >&2; }
die() { log "$*"; exit 1; }

# ------------------------------------------------------------------ system packages
packages=(dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-managesieved
          dovecot-sqlite  # an SQL passdb for the auth service usher_auth_service asks (internal/authservice, test/e2e)
          curl isync swaks sieve-connect python3 haproxy
          util-linux  # taskset, for the pinned benchmark harness (bench -pin)
          systemd man-db  # systemd-analyze verify and man --warnings, for scripts/test-deb.sh
          chromium  # renders the status page headless (test/e2e TestStatusPage)
          debootstrap  # a clean Debian 12 to install the .deb on (scripts/test-deb-clean.sh)
          prometheus  # promtool check/test rules on dist/prometheus (test/e2e); the server is not started
          make gcc libc6-dev)  # -race needs cgo, hence a C toolchain
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

SUDO=()
privileged=yes
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    privileged=no
    [ ${#missing[@]} -eq 0 ] || die "missing packages (${missing[*]}) and neither root nor sudo; install them first"
  fi
fi

installed_now=no
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update </dev/null
  "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
  installed_now=yes
fi

# The package starts a system-wide Dovecot on the standard ports; the tests start their own
# instances, so stop and disable it. Outside CI only when this run installed it.
stop_system_dovecot() {
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
  else
    "${SUDO[@]}" invoke-rc.d dovecot stop >/dev/null 2>&1 || "${SUDO[@]}" service dovecot stop >/dev/null 2>&1 || true
    "${SUDO[@]}" update-rc.d dovecot disable >/dev/null 2>&1 || true
  fi
  # Last resort: the master recorded in the system base_dir, which no test instance uses.
  local pid
  pid=$(cat /run/dovecot/master.pid 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/sbin/dovecot ]; then
    log "stopping the system Dovecot (pid $pid)"
    "${SUDO[@]}" kill "$pid" || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
}
# The prometheus package is there for promtool only; its server must not run.
stop_system_prometheus() {
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  else
    "${SUDO[@]}" invoke-rc.d prometheus stop >/dev/null 2>&1 || true
    "${SUDO[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}
if [ "$privileged" = yes ] && { [ "$installed_now" = yes ] || [ "${CI:-}" = true ]; }; then
  stop_system_dovecot
  stop_system_prometheus
fi

