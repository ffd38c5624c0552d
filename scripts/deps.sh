#!/usr/bin/env bash
# Install the Debian packages mod_tokenbay needs to build, test and run its
# demo. Idempotent: installs only what is missing.
set -euo pipefail

PKGS="apache2 apache2-dev libapr1-dev libaprutil1-dev libaprutil1-dbd-mysql
      libjansson-dev libcurl4-openssl-dev mariadb-server mariadb-client
      libapache2-mod-perl2 libwww-perl libdbi-perl libdbd-mariadb-perl
      libjson-pp-perl autoconf automake libtool pkg-config make gcc perl
      python3 curl wrk"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# keep the package scripts from starting system services (MariaDB on 3306)
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
