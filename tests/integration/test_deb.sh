#!/usr/bin/env bash
# The Debian package (issue 19): `make deb` builds it from a copy under /tmp; lintian has
# nothing to say; its contents, control fields, conffile and unit are checked with dpkg-deb;
# it is installed into a throwaway root (dpkg --root, maintainer scripts run chrootless with
# DPKG_ROOT, so the host's systemd and /etc are never touched), where the installed binary
# serves with the installed conffile; remove keeps the conffile and the service's data, purge
# removes both. The repository's `git status` is the same afterwards.
# Release build only (CACHED_BUILD=build): the package is built from source either way.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "${CACHED_BUILD:-build}" != build ]; then
  echo "test_deb: skipped for ${CACHED_BUILD} (the package builds its own release binary)"
  exit 0
fi

pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { # description, command...
  local what=$1; shift
  if "$@"; then ok; else bad "$what"; fi
}

T=$(mktemp -d /tmp/cached-test-deb.XXXXXX)
R="$T/root"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -9 "$server_pid"; fi
  rm -rf "$T"
}
trap cleanup EXIT

git_before=$(git status --porcelain 2>/dev/null)
passwd_before=$(md5sum /etc/passwd /etc/group)
host_wants=/etc/systemd/system/multi-user.target.wants/cached.service
host_had_wants=no
[ -e "$host_wants" ] && host_had_wants=yes

# ---- build ----
t0=$SECONDS
if ! make --no-print-directory -s deb BUILD="$T/b" >"$T/make.out" 2>&1; then
  cat "$T/make.out"
  bad "make deb"
  echo "test_deb: $pass passed, $fail failed"
  exit 1
fi
deb=$(tail -n 1 "$T/make.out")
ok
echo "make deb: $deb ($((SECONDS - t0)) s)"
check "the .deb is under the given build dir" test -f "$deb" -a "${deb#"$T"/b/deb/}" != "$deb"
version=$(dpkg-parsechangelog -S Version)

# ---- lintian (default checks: errors and warnings) ----
lintian "$deb" >"$T/lintian.out" 2>&1
lrc=$?
check "lintian exit 0 (got $lrc)" test "$lrc" -eq 0
tags=$(grep -E '^[EW]: ' "$T/lintian.out")
check "lintian: no errors or warnings: $tags" test -z "$tags"

# ---- contents ----
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$T/contents"
for f in /usr/bin/cached /usr/share/man/man1/cached.1.gz /etc/cached/cached.conf \
  /lib/systemd/system/cached.service /usr/lib/sysusers.d/cached.conf \
  /usr/share/doc/cached/README.md.gz /usr/share/doc/cached/changelog.gz \
  /usr/share/doc/cached/copyright; do
  check "package contains $f" grep -qx "$f" "$T/contents"
done
if [ -f tools/cached.socket ]; then
  check "package contains cached.socket" grep -qx /lib/systemd/system/cached.socket "$T/contents"
fi
check "nothing under /usr/local" test -z "$(grep '^/usr/local' "$T/contents")"
listing=$(dpkg-deb -c "$deb")
check "/usr/bin/cached is 0755 root" grep -q -- '-rwxr-xr-x root/root .* ./usr/bin/cached$' <<<"$listing"

# ---- control fields ----
field() { dpkg-deb -f "$deb" "$1"; }
check "Package: cached" test "$(field Package)" = cached
check "Version matches debian/changelog" test "$(field Version)" = "$version"
check "Architecture is the host's" test "$(field Architecture)" = "$(dpkg --print-architecture)"
check "Depends names libevent" grep -q 'libevent-2.1-7' <<<"$(field Depends)"
check "Depends names a sysusers provider" grep -q 'systemd-sysusers' <<<"$(field Depends)"
check "Maintainer set" test -n "$(field Maintainer)"
check "Description set" grep -q 'memcached-compatible' <<<"$(field Description)"
mkdir -p "$T/ctrl" "$T/data"
dpkg-deb -e "$deb" "$T/ctrl"
dpkg-deb -x "$deb" "$T/data"
check "conffiles are exactly cached.conf and logrotate.d/cached" \
  test "$(sort "$T/ctrl/conffiles" | tr '\n' ' ')" = "/etc/cached/cached.conf /etc/logrotate.d/cached "
check "logrotate rotates /var/log/cached/*.log and sends SIGHUP" \
  grep -q 'signal=HUP cached.service' "$T/data/etc/logrotate.d/cached"
check "copyright is BSD-3-Clause" grep -qx 'License: BSD-3-Clause' "$T/data/usr/share/doc/cached/copyright"
check "cached.conf is cached.conf.example" cmp -s cached.conf.example "$T/data/etc/cached/cached.conf"
unit="$T/data/lib/systemd/system/cached.service"
check "unit runs /usr/bin/cached with the conffile" \
  grep -qx 'ExecStart=/usr/bin/cached --config /etc/cached/cached.conf --daemon=no $CACHED_OPTS' "$unit"
check "unit runs as the cached user" grep -qx 'User=cached' "$unit"
check "unit has no DynamicUser" test -z "$(grep DynamicUser "$unit")"
for h in Type=notify NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
  StateDirectory=cached LogsDirectory=cached 'CapabilityBoundingSet=' 'ExecReload=/bin/kill -HUP $MAINPID'; do
  check "unit keeps $h" grep -qx -- "$h" "$unit"
done
if command -v systemd-analyze >/dev/null; then
  sed "s|/usr/bin/cached|$T/data/usr/bin/cached|" "$unit" >"$T/cached.service"
  systemd-analyze verify "$T/cached.service" >"$T/verify.out" 2>&1
  check "systemd-analyze verify the unit: $(cat "$T/verify.out")" test $? -eq 0 -a ! -s "$T/verify.out"
fi
check "sysusers line for cached" grep -q '^u cached ' "$T/data/usr/lib/sysusers.d/cached.conf"
check "postinst runs systemd-sysusers" grep -q 'systemd-sysusers' "$T/ctrl/postinst"

# ---- install into a throwaway root ----
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
DPKG=(dpkg --root="$R" --force-script-chrootless --force-depends)
"${DPKG[@]}" -i "$deb" >"$T/install.out" 2>&1
check "dpkg -i into the root" test $? -eq 0 || cat "$T/install.out"
check "installed: dpkg -s says install ok installed" \
  test "$(dpkg-query --root="$R" -W -f='${Status}' cached)" = "install ok installed"
for f in /usr/bin/cached /etc/cached/cached.conf /lib/systemd/system/cached.service \
  /usr/share/man/man1/cached.1.gz /usr/share/doc/cached/README.md.gz; do
  check "installed $f" test -f "$R$f"
done
check "the cached system user exists in the root" grep -q '^cached:x:[0-9]*:[0-9]*:.*:/var/lib/cached:' "$R/etc/passwd"
uid=$(awk -F: '$1 == "cached" {print $3}' "$R/etc/passwd")
check "the cached user is a system user (uid $uid < 1000)" test -n "$uid" -a "${uid:-9999}" -lt 1000
check "the cached group exists" grep -q '^cached:' "$R/etc/group"
check "the unit is enabled in the root" test -L "$R/etc/systemd/system/multi-user.target.wants/cached.service"
if [ -f tools/cached.socket ]; then
  check "the socket is enabled in the root" test -L "$R/etc/systemd/system/sockets.target.wants/cached.socket"
fi

# The installed binary with the installed conffile, as -d: it returns once it serves.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$R/usr/bin/cached" --config "$R/etc/cached/cached.conf" -p "$port" -l 127.0.0.1 --run-as-root \
  -d -P "$T/cached.pid" >"$T/run.out" 2>&1
check "installed cached -d exits 0 once ready" test $? -eq 0
server_pid=$(cat "$T/cached.pid" 2>/dev/null)
reply=""
if exec 3<>"/dev/tcp/127.0.0.1/$port"; then
  printf 'version\r\n' >&3
  read -r -t 5 reply <&3
  exec 3>&-
fi
check "installed cached answers version (got '$reply')" grep -q '^VERSION ' <<<"$reply"
if [ -n "$server_pid" ]; then
  kill "$server_pid"
  for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  check "installed cached stops on SIGTERM" test ! -e "/proc/$server_pid"
fi

# What the service would have written, and an admin's edit of the conffile.
mkdir -p "$R/var/lib/cached" "$R/var/log/cached"
echo state >"$R/var/lib/cached/state"
echo log >"$R/var/log/cached/cached.log"
echo "# edited by the admin" >>"$R/etc/cached/cached.conf"

# ---- remove: the conffile and the data stay ----
"${DPKG[@]}" -r cached >"$T/remove.out" 2>&1
check "dpkg -r" test $? -eq 0 || cat "$T/remove.out"
check "removed: /usr/bin/cached gone" test ! -e "$R/usr/bin/cached"
check "removed: unit gone" test ! -e "$R/lib/systemd/system/cached.service"
check "removed: the edited conffile stays" grep -q 'edited by the admin' "$R/etc/cached/cached.conf"
check "removed: the data stays" test -f "$R/var/lib/cached/state" -a -f "$R/var/log/cached/cached.log"
check "removed: status config-files" \
  test "$(dpkg-query --root="$R" -W -f='${Status}' cached)" = "deinstall ok config-files"

# ---- purge: both go; the user stays (Debian does not delete system users) ----
"${DPKG[@]}" -P cached >"$T/purge.out" 2>&1
check "dpkg -P" test $? -eq 0 || cat "$T/purge.out"
check "purged: conffile gone" test ! -e "$R/etc/cached/cached.conf"
check "purged: /var/lib/cached gone" test ! -e "$R/var/lib/cached"
check "purged: /var/log/cached gone" test ! -e "$R/var/log/cached"
check "purged: unit no longer enabled" test ! -e "$R/etc/systemd/system/multi-user.target.wants/cached.service"
check "purged: dpkg forgets the package" test -z "$(dpkg-query --root="$R" -W -f='${Status}' cached 2>/dev/null | grep -v 'not-installed')"
check "purged: the system user stays" grep -q '^cached:' "$R/etc/passwd"

# ---- the host and the repository are untouched ----
check "host /etc/passwd and /etc/group unchanged" test "$(md5sum /etc/passwd /etc/group)" = "$passwd_before"
if [ "$host_had_wants" = no ]; then
  check "host has no cached.service enabled" test ! -e "$host_wants"
fi
check "git status unchanged" test "$(git status --porcelain 2>/dev/null)" = "$git_before"

echo "test_deb: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
