// Instantiates kernels_impl.inc per instruction set. x86-64: baseline SSE2 (generic), AVX2+FMA and
// AVX-512F through `#pragma GCC target` regions, chosen at run time with __builtin_cpu_supports.
// aarch64: NEON is baseline, one instantiation. No -march=native needed (FLASHCHECK_NATIVE_TUNE=1
// adds it to the generic build, see binding.gyp).
#include "kernels.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace fc {

#define KERNELS_TABLE(label) \
  const Kernels table = {label,     NR,        gemm_impl,       gemv_impl,      scan_impl, attend_impl, attend_block_impl, \
                         gate_impl, widen_impl, softplus_impl, conv_silu_impl, layernorm_impl, add_impl};

namespace k_generic {
#if defined(__AVX512F__)
#define VL 16
#elif defined(__AVX__) || defined(__AVX2__)
#define VL 8
#else
#define VL 4
#endif
#include "kernels_impl.inc"
#if defined(__aarch64__)
KERNELS_TABLE("neon")
#else
KERNELS_TABLE("generic")
#endif
#undef VL
}  // namespace k_generic

#if defined(__x86_64__) && !defined(FLASHCHECK_NO_DISPATCH)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace k_avx2 {
#define VL 8
#include "kernels_impl.inc"
KERNELS_TABLE("avx2")
#undef VL
}  // namespace k_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace k_avx512 {
#define VL 16
#include "kernels_impl.inc"
KERNELS_TABLE("avx512")
#undef VL
}  // namespace k_avx512
#pragma GCC pop_options
#endif

int kernels_available(const Kernels** out, int max) {
  int n = 0;
  if (n < max) out[n++] = &k_generic::table;
#if defined(__x86_64__) && !defined(FLASHCHECK_NO_DISPATCH)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && n < max) out[n++] = &k_avx2::table;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && n < max)
    out[n++] = &k_avx512::table;
#endif
  return n;
}

static const Kernels* pick() {
  const Kernels* all[4];
  int n = kernels_available(all, 4);
  const char* want = std::getenv("FLASHCHECK_ISA");
  if (want && *want) {
    for (int i = 0; i < n; i++)
      if (std::strcmp(all[i]->name, want) == 0) return all[i];
  }
  return all[n - 1];
}

const Kernels& kernels() {
  static const Kernels* k = pick();
  return *k;
}

}  // namespace fc
