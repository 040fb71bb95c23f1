// Sample values of a test file's signal: a list of numbers, or a series string in promtool's expanding
// notation: space-separated terms, each `a` (one value), `a+bxn` / `a-bxn` (a, a±b, …, a±n·b: n+1 values),
// `axn` (a repeated n+1 times) or `_` (no sample in that slot).

/** Values in slot order; null is a slot without a sample. Throws Error with a message on a bad term. */
export function parseSeries(text: string): (number | null)[] {
  const out: (number | null)[] = []
  const terms = text.trim().split(/\s+/).filter((t) => t !== '')
  if (terms.length === 0) throw new Error('empty series')
  const UNSIGNED = '(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][-+]?\\d+)?'
  const NUM = '[-+]?' + UNSIGNED
  const expand = new RegExp(`^(${NUM})(?:([-+])(${UNSIGNED}))?x(\\d+)$`)
  const single = new RegExp(`^${NUM}$`)
  for (const term of terms) {
    if (term === '_') {
      out.push(null)
      continue
    }
    if (single.test(term)) {
      out.push(Number(term))
      continue
    }
    const m = expand.exec(term)
    if (!m) throw new Error(`bad series term "${term}" (expected a number, _, a+bxn, a-bxn or axn)`)
    const a = Number(m[1])
    const b = m[3] === undefined ? 0 : Number(m[3]) * (m[2] === '-' ? -1 : 1)
    const n = Number(m[4])
    if (n > 1_000_000) throw new Error(`series term "${term}" expands to more than a million samples`)
    // Rounded to 15 significant digits so 0.2+0.05x2 reads 0.3, not 0.30000000000000004.
    for (let k = 0; k <= n; k++) out.push(Number((a + b * k).toPrecision(15)))
  }
  return out
}

/** A signal payload: the template with every `$value` replaced by the number, or the bare number. */
export function renderPayload(template: string | undefined, v: number): string {
  return template === undefined ? String(v) : template.replace(/\$value\b/g, String(v))
}
