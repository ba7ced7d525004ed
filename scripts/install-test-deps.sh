#!/usr/bin/env bash
# Installs the real services the tests use, from Debian's packages, when they are missing:
# PostgreSQL (server binaries; the tests start their own cluster), Prometheus and the OCI registry
# (docker-registry; the tests start their own on free ports), Chromium (browser tests), git.
# With --bench, also wrk (the HTTP load generator `make bench` uses).
set -euo pipefail

need=()
[ "${1:-}" = "--bench" ] && ! command -v wrk >/dev/null && need+=(wrk)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql postgresql-contrib)
command -v prometheus >/dev/null || need+=(prometheus)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v haproxy >/dev/null || need+=(haproxy)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v git >/dev/null || need+=(git)
command -v runuser >/dev/null || need+=(util-linux)
command -v npm >/dev/null || need+=(npm)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]}; run this script as root (or install them) first" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# axe-core, which the accessibility browser test injects into every page, from the npm registry at
# the version its package-lock.json pins.
here="$(cd "$(dirname "$0")/.." && pwd)"
[ -f "$here/tests/e2e/axe/node_modules/axe-core/axe.min.js" ] || npm ci --prefix "$here/tests/e2e/axe" --no-audit --no-fund --silent
id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
echo "test dependencies ready: $(ls -d /usr/lib/postgresql/*/bin | tail -1), $(/usr/bin/chromium --version 2>/dev/null | head -1), $(prometheus --version 2>&1 | head -1), docker-registry $(docker-registry --version 2>&1 | head -1)"
