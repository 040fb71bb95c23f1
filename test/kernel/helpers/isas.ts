// The kernel implementations a test can force with FLASHCHECK_ISA on this CPU.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { ADDON_PATH } from '../../../daemon/model/addon.js'

/** The x86 implementations FLASHCHECK_ISA can force on this CPU (kernels.cc's order); none elsewhere. */
export function isas(): string[] {
  if (process.arch !== 'x64') return []
  const flags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/))
  const out = ['generic']
  if (flags.has('avx2') && flags.has('fma')) out.push('avx2')
  if (flags.has('avx2') && flags.has('avx_vnni')) out.push('avx2-vnni')
  if (flags.has('avx512f') && flags.has('avx2')) out.push('avx512')
  // AMX also needs the kernel's per-process grant (arch_prctl), which only the addon can tell
  if (flags.has('amx_int8') && addonIsa('avx512-amx') === 'avx512-amx') out.push('avx512-amx')
  return out
}

/** The float ISA the addon picks with FLASHCHECK_ISA=want (a fresh process: the choice is made once). */
export function addonIsa(want: string): string {
  const code = `console.log(require(${JSON.stringify(ADDON_PATH)}).isa())`
  return spawnSync(process.execPath, ['-e', code], { env: { ...process.env, FLASHCHECK_ISA: want }, encoding: 'utf8' }).stdout.trim()
}
