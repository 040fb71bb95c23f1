#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine with Node 20: installs what the tests need (mosquitto via
# apt-get when missing), installs dependencies and builds (npm ci: TypeScript and the native addon), then
# runs every tap test and prints one closing summary line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/sbin:/sbin"
# mosquitto for the integration tests; an aarch64 cross compiler and qemu-user so the kernel's Jetson (NEON)
# build is compiled and run over the golden cases too.
need=()
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
# openssl makes the certificates of the TLS tests; mosquitto_passwd (package mosquitto) their password file.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
# The deployment tests: systemd-analyze/systemd-sysusers/systemd-tmpfiles offline (no running systemd
# needed); python3 (node-gyp's too) runs an independent sd_notify listener.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# numpy under Debian's own interpreter: an independent float16 peer for the quantization format tests.
/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || need+=(python3 python3-numpy)
# tools/train (the trained demo model's trainer, its parity with the kernel and a training smoke test): Debian's
# own PyTorch, run by Debian's interpreter; OpenBLAS so that it does not fall back to the reference BLAS.
/usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need+=(python3-torch)
dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q 'ok installed' || need+=(libopenblas0-pthread)
# The status page's browser tests drive Debian's chromium (playwright-core, no browser download).
[ -x /usr/bin/chromium ] || need+=(chromium)
# strace: the audit spool's sync-per-append test counts the system calls.
command -v strace >/dev/null 2>&1 || need+=(strace)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing ${need[*]} (apt-get)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== npm ci (builds the TypeScript and the native kernel)"
npm ci --no-audit --no-fund

echo "== tests"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
set +e
npx tap -R tap "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
# -a: test output can carry raw bytes (malformed-input tests), which would make grep call the file binary.
summary="$(grep -a -E '^# \{ total: [0-9]+' "$out" | tail -n 1)"
total="$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")"
pass="$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")"
fail="$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")"
skip="$(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$summary")"
todo="$(sed -nE 's/.*todo: ([0-9]+).*/\1/p' <<<"$summary")"
[ -n "$total" ] || { echo "no test summary found"; exit 1; }
failed=$(( ${fail:-0} ))
[ "$rc" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "tests: ${pass:-0} passed, ${failed} failed, $(( ${skip:-0} + ${todo:-0} )) skipped"
exit "$rc"
