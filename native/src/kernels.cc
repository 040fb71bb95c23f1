// Instantiates kernels_impl.inc per instruction set. x86-64: baseline SSE2 (generic), AVX2+FMA and
// AVX-512F through `#pragma GCC target` regions, chosen at run time with __builtin_cpu_supports.
// aarch64: NEON is baseline, one instantiation. No -march=native needed (FLASHCHECK_NATIVE_TUNE=1
// adds it to the generic build, see binding.gyp).
#include "kernels.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

namespace fc {

#define KERNELS_TABLE(label) \
  const Kernels table = {label,     NR,        gemm_impl,       gemv_impl,      scan_impl, attend_impl, attend_block_impl, \
                         gate_impl, widen_impl, softplus_impl, conv_silu_impl, layernorm_impl, add_impl, lse_impl};

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

// Tables that differ from another only in their integer (quantized-weight) kernels: the float loops of AVX2 with
// AVX-VNNI dot products, of AVX-512 with AMX-INT8 tile products, and the NEON loops with Armv8.2 dotprod.
[[maybe_unused]] static Kernels renamed(const Kernels& k, const char* name) {
  Kernels r = k;
  r.name = name;
  return r;
}
#if defined(__x86_64__) && !defined(FLASHCHECK_NO_DISPATCH)
static const Kernels& avx2_vnni_table() {
  static const Kernels t = renamed(k_avx2::table, "avx2-vnni");
  return t;
}
static const Kernels& avx512_amx_table() {
  static const Kernels t = renamed(k_avx512::table, "avx512-amx");
  return t;
}
#endif
#if defined(__aarch64__)
static const Kernels& dotprod_table() {
  static const Kernels t = renamed(k_generic::table, "dotprod");
  return t;
}
#endif

int kernels_available(const Kernels** out, int max) {
  int n = 0;
  if (n < max) out[n++] = &k_generic::table;
#if defined(__x86_64__) && !defined(FLASHCHECK_NO_DISPATCH)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && n < max) out[n++] = &k_avx2::table;
  if (avx2 && __builtin_cpu_supports("avxvnni") && n < max) out[n++] = &avx2_vnni_table();
  const bool avx512 = __builtin_cpu_supports("avx512f") && avx2;
  if (avx512 && n < max) out[n++] = &k_avx512::table;
  if (avx512 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && amx_int8_usable() && n < max)
    out[n++] = &avx512_amx_table();
#endif
#if defined(__aarch64__)
  if ((getauxval(AT_HWCAP) & HWCAP_ASIMDDP) && n < max) out[n++] = &dotprod_table();
#endif
  return n;
}

static Kernels pick() {
  const Kernels* all[8];
  int n = kernels_available(all, 8);
  const Kernels* k = all[n - 1];
  const char* want = std::getenv("FLASHCHECK_ISA");
  if (want && *want) {
    for (int i = 0; i < n; i++)
      if (std::strcmp(all[i]->name, want) == 0) k = all[i];
  }
  Kernels r = *k;
  r.q = &qkernels_for(r.name);
  return r;
}

const Kernels& kernels() {
  static const Kernels k = pick();
  return k;
}

}  // namespace fc
