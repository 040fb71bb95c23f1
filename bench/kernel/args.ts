// Command-line values of the kernel benchmarks.

/** A positive integer flag's value, or `dflt` when the flag is absent; throws naming the flag otherwise. */
export function posInt(s: string | undefined, flag: string, dflt: number): number {
  if (s === undefined) return dflt
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${flag}: expected a positive integer, got "${s}"`)
  return n
}
