#!/usr/bin/env bash
# Installs what kpy and its tests need on Debian/Ubuntu, as root, idempotently:
# system packages from apt, then the project into ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (kpy attaches eBPF programs)" >&2; exit 4; }

packages=(python3 python3-venv python3-pip make clang llvm libbpf-dev libbpf1 gcc libc6-dev
          iproute2 util-linux procps ca-certificates postgresql redis-server
          libfaketime sudo git curl mariadb-server mariadb-client)  # libfaketime: kpy test's replay clock; sudo and git: the
          # action's tests run act as a runner user that may sudo; curl: one of the HTTPS
          # clients the TLS tests run; mariadb-*: the MySQL protocol's tests (server, mysql CLI,
          # mysqlslap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
command -v bpftool >/dev/null || missing+=(bpftool)
command -v npm >/dev/null || missing+=(nodejs npm)  # the Node.js sample service's tests
command -v javac >/dev/null || missing+=(default-jdk-headless)  # the Java HTTPS client's tests
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # bpftool is its own package on Debian; Ubuntu ships it in linux-tools.
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    rest=()
    for p in "${missing[@]}"; do [ "$p" = bpftool ] || rest+=("$p"); done
    apt-get install -y -qq --no-install-recommends "${rest[@]}" linux-tools-common "linux-tools-$(uname -r)" >/dev/null
  fi
fi

# pip trusts the system's CA store, where a proxy's or a company's CA is installed
[ -f /etc/ssl/certs/ca-certificates.crt ] && export PIP_CERT=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'
# the Node.js samples' dependencies (node-postgres; Express, Sequelize, jsonwebtoken, bcryptjs),
# from the npm registry; npm trusts the system's CA store too
for sample in examples/users-node examples/auth/node examples/mysql/node; do
  ( cd "$sample" && NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt} \
      npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null )
done
echo "install.sh: kpy $(.venv/bin/kpy --version | awk '{print $NF}') in $(pwd)/.venv" >&2
