// The CEL environment rule expressions compile against: the standard CEL library plus the signal window
// functions. A signal name in an expression evaluates to its SignalRef, which evaluate() points at the
// concrete topic of the current request before running the checks.
import { Environment } from '@marcbachmann/cel-js'
import type { SignalSeries } from './types.js'
import { parseDuration } from './duration.js'

/** Raised by the signal functions; becomes EVAL_ERROR with this message. */
export class SignalError extends Error {}

/** Per-rule handle of one declared signal; its mutable fields are set per evaluation (evaluation is synchronous). */
export class SignalRef {
  series: SignalSeries | undefined = undefined
  topic = ''
  now = 0
  /** The `values` record of the check being evaluated. */
  values: Record<string, unknown> = {}
  private readonly labels = new Map<string, string>()

  constructor(
    readonly name: string,
    /** SignalSpec key of the history read. */
    readonly key: string,
    readonly keepMs: number,
  ) {}

  /** `avg(vib, "2s")`: the key under which a function result is reported in check values; cached. */
  label(fn: string, window?: string): string {
    const k = window === undefined ? fn : fn + '\u0000' + window
    let l = this.labels.get(k)
    if (l === undefined) {
      l = window === undefined ? `${fn}(${this.name})` : `${fn}(${this.name}, "${window}")`
      this.labels.set(k, l)
    }
    return l
  }
}

const windowCache = new Map<string, number>()

/** Window length of a literal validated at load; cached so evaluation never parses. */
function windowMs(text: string): number {
  let ms = windowCache.get(text)
  if (ms === undefined) {
    ms = parseDuration(text)
    if (ms === undefined) throw new SignalError(`invalid window "${text}"`)
    windowCache.set(text, ms)
  }
  return ms
}

/** Start of a window: never before the signal's keep, so results do not depend on other rules' keep. */
function from(s: SignalRef, ms: number): number {
  return s.now - Math.min(ms, s.keepMs)
}

function noSamples(s: SignalRef, window: string): SignalError {
  return new SignalError(`no samples of ${s.name} on ${s.topic} within ${window}`)
}

type Agg = 'mean' | 'min' | 'max'
function aggregate(fn: string, agg: Agg) {
  return function (this: unknown, s: SignalRef, w: string): number {
    const v = s.series ? s.series[agg](from(s, windowMs(w)), s.now) : NaN
    if (Number.isNaN(v)) throw noSamples(s, w)
    s.values[s.label(fn, w)] = v
    return v
  }
}

/** Names of the functions this module adds, with their parameter help for error messages. */
export const SIGNAL_FUNCTIONS: Record<string, { windowed: boolean; usage: string }> = {
  last: { windowed: false, usage: 'last(signal)' },
  age_ms: { windowed: false, usage: 'age_ms(signal)' },
  avg: { windowed: true, usage: 'avg(signal, "<duration>")' },
  min: { windowed: true, usage: 'min(signal, "<duration>")' },
  max: { windowed: true, usage: 'max(signal, "<duration>")' },
  count: { windowed: true, usage: 'count(signal, "<duration>")' },
  slope: { windowed: true, usage: 'slope(signal, "<duration>")' },
}

function createBase(): Environment {
  return new Environment({ unlistedVariablesAreDyn: false, homogeneousAggregateLiterals: false })
    .registerType('Signal', SignalRef)
    .registerFunction('last(Signal): double', function (s: SignalRef): number {
      const v = s.series ? s.series.lastValue(s.now - s.keepMs, s.now) : NaN
      if (Number.isNaN(v)) throw new SignalError(`no samples of ${s.name} on ${s.topic} within its keep`)
      s.values[s.label('last')] = v
      return v
    })
    .registerFunction('age_ms(Signal): double', function (s: SignalRef): number {
      const t = s.series ? s.series.lastTime(s.now - s.keepMs, s.now) : NaN
      // No sample kept: infinitely old, so freshness checks like age_ms(s) < 1000 fail instead of erroring.
      const v = Number.isNaN(t) ? Infinity : s.now - t
      s.values[s.label('age_ms')] = Number.isFinite(v) ? v : null
      return v
    })
    .registerFunction('avg(Signal, string): double', aggregate('avg', 'mean'))
    .registerFunction('min(Signal, string): double', aggregate('min', 'min'))
    .registerFunction('max(Signal, string): double', aggregate('max', 'max'))
    .registerFunction('count(Signal, string): int', function (s: SignalRef, w: string): bigint {
      const n = s.series ? s.series.count(from(s, windowMs(w)), s.now) : 0
      s.values[s.label('count', w)] = n
      return BigInt(n)
    })
    .registerFunction('slope(Signal, string): double', function (s: SignalRef, w: string): number {
      const v = s.series ? s.series.slopePerSecond(from(s, windowMs(w)), s.now) : NaN
      if (Number.isNaN(v)) {
        const n = s.series ? s.series.count(from(s, windowMs(w)), s.now) : 0
        throw new SignalError(`slope of ${s.name} on ${s.topic} needs 2 samples at distinct times within ${w}, has ${n}`)
      }
      s.values[s.label('slope', w)] = v
      return v
    })
}

let base: Environment | undefined

/** A fresh child environment per rule (variables differ per rule); the base is built once. */
export function ruleEnvironment(): Environment {
  base ??= createBase()
  return base.clone()
}
