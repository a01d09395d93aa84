#!/usr/bin/env bash
# Checks the release binary carries the hardening the Makefile asks for, checksec-style, from
# the ELF itself (readelf only): PIE, full RELRO (GNU_RELRO + BIND_NOW), stack protector
# (-fstack-protector-strong leaves calls to __stack_chk_fail), FORTIFY_SOURCE (calls to
# __*_chk variants), and a non-executable stack.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-build/cached}
[ -x "$BIN" ] || { echo "hardening: $BIN not built (run make)"; exit 1; }
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

hdr=$(readelf -W -h "$BIN")
dyn=$(readelf -W -d "$BIN")
phd=$(readelf -W -l "$BIN")
syms=$(readelf -W --dyn-syms "$BIN")

# PIE: ELF type DYN and the PIE bit in DT_FLAGS_1 (a shared library is DYN without it).
if grep -q 'Type:.*DYN' <<<"$hdr" && grep -q 'FLAGS_1.*PIE' <<<"$dyn"; then ok "PIE"; else bad "PIE (not a position-independent executable)"; fi
# Full RELRO: a GNU_RELRO segment plus immediate binding (BIND_NOW or FLAGS_1 NOW).
grep -q 'GNU_RELRO' <<<"$phd" && relro=1 || relro=0
grep -qE '\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*\bNOW\b|\(BIND_NOW\)' <<<"$dyn" && now=1 || now=0
if [ $relro = 1 ] && [ $now = 1 ]; then ok "full RELRO"
elif [ $relro = 1 ]; then bad "full RELRO (partial only: no BIND_NOW; link with -z now)"
else bad "RELRO (no GNU_RELRO segment; link with -z relro -z now)"; fi
# Stack protector.
if grep -q '__stack_chk_fail' <<<"$syms"; then ok "stack protector (__stack_chk_fail)"; else bad "stack protector (no __stack_chk_fail)"; fi
# FORTIFY_SOURCE: at least one fortified libc call.
chk=$(awk '{print $8}' <<<"$syms" | sed 's/@.*//' | grep -E '^__[a-z0-9_]+_chk$' | sort -u | tr '\n' ' ')
if [ -n "$chk" ]; then ok "FORTIFY_SOURCE ($chk)"; else bad "FORTIFY_SOURCE (no __*_chk calls; -D_FORTIFY_SOURCE=2 needs -O1 or more)"; fi
# NX stack.
if grep -E 'GNU_STACK' <<<"$phd" | grep -q 'RWE'; then bad "NX stack (executable stack)"; else ok "NX stack"; fi
# No RPATH/RUNPATH (a writable library path would defeat the rest).
if grep -qE 'RPATH|RUNPATH' <<<"$dyn"; then bad "no RPATH/RUNPATH"; else ok "no RPATH/RUNPATH"; fi

echo "hardening: $pass passed, $fail failed"
[ $fail -eq 0 ]
