#!/usr/bin/env bash
# Installs what `make run`'s demo needs, from Debian's packages, when it is missing: HAProxy (the local
# deploy driver puts the example service's versions behind it), Prometheus (graphs and canary
# analyses; the package ships promtool too) and docker-registry (the example service's images).
# As root it installs them; otherwise it says in one line what is missing, and `make run` goes on:
# the portal works without them, and each page or deploy that needs one says which.
set -euo pipefail

need=()
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v prometheus >/dev/null || need+=(prometheus)
command -v docker-registry >/dev/null || need+=(docker-registry)

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: missing ${need[*]}: deploys, graphs or images of the example service will say so; install them with: sudo bash scripts/demo-deps.sh" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -q --no-install-recommends "${need[@]}"
echo "demo: installed ${need[*]}"
