#!/usr/bin/env bash
# Builds the kernel (every source but the Node-API binding) with AddressSanitizer + UndefinedBehaviorSanitizer
# into native/build-sanitize/ and runs every golden case through it with each instruction set this CPU
# has (generic, avx2, avx512 / neon): full forward, prefill-then-step, clone-then-continue.
# Any sanitizer report aborts the run (exit != 0), as does a case that misses its tolerance.
# Usage: native/scripts/sanitize.sh [GOLDEN_DIR]   (default: ../shared/golden beside the repository)
set -euo pipefail
native="$(cd "$(dirname "$0")/.." && pwd)"
golden="${1:-$native/../../shared/golden}"
out="$native/build-sanitize"
CXX="${CXX:-g++}"
[ -d "$golden" ] || { echo "sanitize.sh: golden cases not found at $golden" >&2; exit 2; }
mkdir -p "$out"

flags=(-std=gnu++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
       -ffp-contract=fast -pthread -Wall -Wextra)
# every kernel source (all of src/ but the Node-API binding and sd_notify) plus the driver
srcs=()
for f in "$native"/src/*.cc; do
  case "$(basename "$f")" in addon.cc | sdnotify.cc) ;; *) srcs+=("src/$(basename "$f")") ;; esac
done
srcs+=(test/golden_driver.cc)
objs=()
echo "== building with -fsanitize=address,undefined into $out"
pids=()
for s in "${srcs[@]}"; do
  o="$out/$(basename "${s%.cc}").o"
  objs+=("$o")
  if [ ! -f "$o" ] || [ "$native/$s" -nt "$o" ] || [ -n "$(find "$native/src" -newer "$o" -name '*.h' -o -newer "$o" -name '*.inc' | head -1)" ]; then
    (cd "$native" && "$CXX" "${flags[@]}" -c "$s" -o "$o") &
    pids+=($!)
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
"$CXX" "${flags[@]}" "${objs[@]}" -o "$out/golden_driver"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cases=("$golden"/*/)
isas=$("$out/golden_driver" --list-isa)
status=0
for isa in $isas; do
  echo "== golden cases, isa=$isa"
  FLASHCHECK_ISA="$isa" "$out/golden_driver" --threads 2 "${cases[@]}" || status=1
done
echo "== elementwise kernels against float64"
"$out/golden_driver" --elementwise || status=1
# corrupt copies of one case: every load error path must report, not crash or read out of bounds
echo "== corrupt checkpoints"
bad="$out/corrupt"
rm -rf "$bad"
src="${cases[0]%/}"
mk() { mkdir -p "$bad/$1"; cp "$src/config.json" "$bad/$1/"; }
size=$(stat -c %s "$src/model.safetensors")
mk truncated-header; head -c 100 "$src/model.safetensors" > "$bad/truncated-header/model.safetensors"
mk truncated-data; head -c $((size - 64)) "$src/model.safetensors" > "$bad/truncated-data/model.safetensors"
mk tiny-file; head -c 5 "$src/model.safetensors" > "$bad/tiny-file/model.safetensors"
mk huge-header-length; cp "$src/model.safetensors" "$bad/huge-header-length/"
printf '\xff\xff\xff\xff\xff\x7f\x00\x00' | dd of="$bad/huge-header-length/model.safetensors" bs=1 seek=0 conv=notrunc status=none
mk garbage-header; cp "$src/model.safetensors" "$bad/garbage-header/"
printf '{"a":[1,2' | dd of="$bad/garbage-header/model.safetensors" bs=1 seek=8 conv=notrunc status=none
mk no-weights
mkdir -p "$bad/bad-config"; cp "$src/model.safetensors" "$bad/bad-config/"; printf '{"model_type": "phi4flash", "hidden_size": ' > "$bad/bad-config/config.json"
"$out/golden_driver" --expect-load-error "$bad"/*/ || status=1

isas=$(echo $isas)
if [ "$status" = 0 ]; then echo "sanitize: all golden cases and corrupt checkpoints clean under ASan+UBSan (isa: $isas)"; else echo "sanitize: FAILED"; fi
exit "$status"
