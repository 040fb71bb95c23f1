// Durations as written in rule files: one or more <number><unit> terms, units ms, s, m, h ("500ms", "2s",
// "1.5s", "1m30s"). Parsed at load; the evaluator looks literals up in a cache, never re-parses.

const TERM = /(\d+(?:\.\d+)?)(ms|s|m|h)/y
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Milliseconds, or undefined when the text is not a valid positive duration. */
export function parseDuration(text: string): number | undefined {
  if (text.length === 0) return undefined
  let total = 0
  TERM.lastIndex = 0
  while (TERM.lastIndex < text.length) {
    const m = TERM.exec(text)
    if (!m) return undefined
    total += Number(m[1]) * UNIT_MS[m[2]!]!
  }
  return total > 0 ? total : undefined
}

export const DURATION_HELP = 'a duration like "500ms", "2s", "1.5m", "1h" or "1m30s"'
