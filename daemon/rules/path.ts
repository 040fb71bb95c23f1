// Value paths into a JSON payload: `payload` (the whole payload) or `payload.a.b.0` (object keys, and
// non-negative integers as array indexes). Split once at load; resolving walks the pre-split keys.

export type Path = readonly string[]

/** Keys after `payload`, or undefined when the text is not a payload path. */
export function parsePayloadPath(text: string): Path | undefined {
  if (text === 'payload') return []
  if (!text.startsWith('payload.')) return undefined
  const keys = text.slice('payload.'.length).split('.')
  return keys.every((k) => k.length > 0) ? keys : undefined
}

/** The value at `path`, or undefined when any step is missing. */
export function resolvePath(root: unknown, path: Path): unknown {
  let v = root
  for (let i = 0; i < path.length; i++) {
    if (v === null || typeof v !== 'object') return undefined
    const k = path[i]!
    if (Array.isArray(v)) {
      const idx = Number(k)
      if (!Number.isInteger(idx) || idx < 0) return undefined
      v = v[idx]
    } else {
      if (!Object.prototype.hasOwnProperty.call(v, k)) return undefined
      v = (v as Record<string, unknown>)[k]
    }
  }
  return v
}
