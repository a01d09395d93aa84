#!/usr/bin/env bash
# Installs what cached needs to build and test, from Debian's packages. Idempotent: when every
# package is already installed it only runs one dpkg query and exits.
set -euo pipefail

BUILD_PKGS="gcc make pkg-config libevent-dev libjemalloc-dev check libsystemd-dev libssl-dev libsasl2-dev"
TEST_PKGS="python3 python3-pymemcache python3-django python3-pylibmc memcached libmemcached-tools
nutcracker systemd valgrind cppcheck clang-tidy clang-14 libclang-rt-14-dev procps iproute2
openssl sasl2-bin libsasl2-modules php-cli php-memcached libio-socket-ssl-perl
php-memcache libcache-memcached-perl libcache-memcached-fast-perl
libcache-memcached-libmemcached-perl libanyevent-memcached-perl python3-memcache
debhelper lintian dpkg-dev fakeroot prometheus perl xz-utils ruby ruby-dalli nodejs"

want="$BUILD_PKGS"
[ "${1:-}" = "--build-only" ] || want="$BUILD_PKGS $TEST_PKGS"

missing=()
for p in $want; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "tools/deps.sh: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps Debian's memcached package from starting its own service on 11211.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
