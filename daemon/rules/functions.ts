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
  /** The params `topic` was rendered from: a request topic's params object repeats (RuleSet.matchRequest). */
  topicFor: Record<string, string> | undefined = undefined
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
      l = signalLabel(fn, this.name, window)
      this.labels.set(k, l)
    }
    return l
  }
}

/** How a function's result is named in a check's values: `avg(vib, "2s")`, `age_ms(vib)`. */
function signalLabel(fn: string, signal: string, window: string | undefined): string {
  return window === undefined ? `${fn}(${signal})` : `${fn}(${signal}, "${window}")`
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

/** One signal function applied to a signal: reads the window, records the result in the check's values. */
type SignalFn = (s: SignalRef, windowMs: number, label: string, window: string) => number | bigint

function aggregate(agg: Agg): SignalFn {
  return (s, ms, label, w) => {
    const v = s.series ? s.series[agg](from(s, ms), s.now) : NaN
    if (Number.isNaN(v)) throw noSamples(s, w)
    s.values[label] = v
    return v
  }
}

const IMPLS: Record<string, SignalFn> = {
  last(s, _ms, label) {
    const v = s.series ? s.series.lastValue(s.now - s.keepMs, s.now) : NaN
    if (Number.isNaN(v)) throw new SignalError(`no samples of ${s.name} on ${s.topic} within its keep`)
    s.values[label] = v
    return v
  },
  age_ms(s, _ms, label) {
    const t = s.series ? s.series.lastTime(s.now - s.keepMs, s.now) : NaN
    // No sample kept: infinitely old, so freshness checks like age_ms(s) < 1000 fail instead of erroring.
    const v = Number.isNaN(t) ? Infinity : s.now - t
    s.values[label] = Number.isFinite(v) ? v : null
    return v
  },
  avg: aggregate('mean'),
  min: aggregate('min'),
  max: aggregate('max'),
  count(s, ms, label) {
    const n = s.series ? s.series.count(from(s, ms), s.now) : 0
    s.values[label] = n
    return BigInt(n)
  },
  slope(s, ms, label, w) {
    const v = s.series ? s.series.slopePerSecond(from(s, ms), s.now) : NaN
    if (Number.isNaN(v)) {
      const n = s.series ? s.series.count(from(s, ms), s.now) : 0
      throw new SignalError(`slope of ${s.name} on ${s.topic} needs 2 samples at distinct times within ${w}, has ${n}`)
    }
    s.values[label] = v
    return v
  },
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

/**
 * One call of a signal function on a named signal with its window literal, resolved once: a compiled
 * expression calls it with the signal's ref (see cel-compile.ts). Undefined for a name that is not a signal
 * function, or a window that is missing, extra or malformed.
 */
export function signalCallSite(fn: string, signal: string, window: string | undefined): ((s: SignalRef) => number | bigint) | undefined {
  const impl = IMPLS[fn]
  const info = SIGNAL_FUNCTIONS[fn]
  if (impl === undefined || info === undefined || info.windowed !== (window !== undefined)) return undefined
  const ms = window === undefined ? 0 : parseDuration(window)
  if (ms === undefined) return undefined
  const w = window ?? ''
  const label = signalLabel(fn, signal, window)
  return (s) => impl(s, ms, label, w)
}

const RETURNS: Record<string, string> = { count: 'int' }

function createBase(): Environment {
  let env = new Environment({ unlistedVariablesAreDyn: false, homogeneousAggregateLiterals: false }).registerType('Signal', SignalRef)
  for (const [name, info] of Object.entries(SIGNAL_FUNCTIONS)) {
    const impl = IMPLS[name]!
    const sig = `${name}(Signal${info.windowed ? ', string' : ''}): ${RETURNS[name] ?? 'double'}`
    env = info.windowed
      ? env.registerFunction(sig, (s: SignalRef, w: string) => impl(s, windowMs(w), s.label(name, w), w))
      : env.registerFunction(sig, (s: SignalRef) => impl(s, 0, s.label(name), ''))
  }
  return env
}

let base: Environment | undefined

/** A fresh child environment per rule (variables differ per rule); the base is built once. */
export function ruleEnvironment(): Environment {
  base ??= createBase()
  return base.clone()
}
