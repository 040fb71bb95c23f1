#!/usr/bin/env bash
# Portability check for the Jetson (aarch64) build from an x86-64 machine: cross-compiles the kernel with
# aarch64-linux-gnu-g++ (same flags as binding.gyp: -O3 -ffp-contract=fast, no -march) and runs every golden
# case under qemu-aarch64, where the NEON implementation is picked.
# Needs: apt-get install g++-aarch64-linux-gnu qemu-user.  Usage: native/scripts/cross-aarch64.sh [GOLDEN_DIR]
set -euo pipefail
native="$(cd "$(dirname "$0")/.." && pwd)"
golden="${1:-$native/../../shared/golden}"
out="$native/build-aarch64"
CXX="${CXX:-aarch64-linux-gnu-g++}"
command -v "$CXX" >/dev/null || { echo "cross-aarch64.sh: $CXX not found (apt-get install g++-aarch64-linux-gnu)" >&2; exit 2; }
command -v qemu-aarch64 >/dev/null || { echo "cross-aarch64.sh: qemu-aarch64 not found (apt-get install qemu-user)" >&2; exit 2; }
mkdir -p "$out"
# every kernel source (all of src/ but the Node-API binding and sd_notify) plus the driver
srcs=()
for f in "$native"/src/*.cc; do
  case "$(basename "$f")" in addon.cc | sdnotify.cc) ;; *) srcs+=("src/$(basename "$f")") ;; esac
done
(cd "$native" && "$CXX" -std=gnu++17 -O3 -ffp-contract=fast -Wall -Wextra -pthread \
  "${srcs[@]}" test/golden_driver.cc -o "$out/golden_driver")
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/golden_driver" --elementwise
# The addon's sd_notify sender is plain POSIX: compiled here too so an aarch64-only error shows up.
(cd "$native" && "$CXX" -std=gnu++17 -O3 -Wall -Wextra -Werror -c src/sdnotify.cc -o "$out/sdnotify.o")
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/golden_driver" --threads 2 "$golden"/*/
echo "cross-aarch64: all golden cases pass on aarch64 ($(qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/golden_driver" --list-isa))"
