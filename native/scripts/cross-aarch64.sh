#!/usr/bin/env bash
# Portability check for the Jetson (aarch64) build from an x86-64 machine: cross-compiles the kernel with
# aarch64-linux-gnu-g++ (same flags as binding.gyp: -O3 -ffp-contract=fast, no -march) and runs every golden
# case under qemu-aarch64, where the NEON implementation is picked.
# Needs: apt-get install g++-aarch64-linux-gnu qemu-user.  Usage: native/scripts/cross-aarch64.sh [GOLDEN_DIR [GRID_DIR]]
# (GRID_DIR: grid cases named CASE-q8_0 / CASE-q4_0, run with --quant on every aarch64 implementation)
set -euo pipefail
native="$(cd "$(dirname "$0")/.." && pwd)"
golden="${1:-$native/../../shared/golden}"
grid="${2:-}"
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
(cd "$native" && "$CXX" -std=gnu++17 -O3 -ffp-contract=fast -Wall -Wextra -pthread \
  src/quant.cc src/qkernels.cc src/kernels.cc src/safetensors.cc test/quant_test.cc -o "$out/quant_test")
run() { qemu-aarch64 -L /usr/aarch64-linux-gnu "$@"; }
isas=$(run "$out/golden_driver" --list-isa | tr '\n' ' ')
run "$out/golden_driver" --threads 2 "$golden"/*/
echo "cross-aarch64: all golden cases pass on aarch64 ($(run "$out/golden_driver" --list-isa | head -1))"
# quantized weights: the integer kernels' unit checks, then grid cases (test/kernel/helpers/grid.ts) with
# load-time quantization on each implementation (neon: scalar integer kernels; dotprod: Armv8.2 sdot)
run "$out/quant_test"
if [ -n "$grid" ]; then
  # every case on the last implementation (dotprod where qemu offers it), two per type on the others (the scalar
  # integer kernels are the x86 generic build's too, where the tests run them on every case)
  last=$(echo $isas | awk '{print $NF}')
  for isa in $isas; do
    for q in q8_0 q4_0; do
      cases=("$grid"/*-"$q"/)
      [ "$isa" = "$last" ] || cases=("${cases[@]:0:2}")
      FLASHCHECK_ISA="$isa" run "$out/golden_driver" --threads 2 --quant "$q" "${cases[@]}"
    done
  done
  echo "cross-aarch64: all grid cases pass with q8_0 and q4_0 on aarch64 ($isas)"
fi
