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

function last(s: SignalRef, _ms: number, label: string): number {
  const v = s.series ? s.series.lastValue(s.now - s.keepMs, s.now) : NaN
  if (Number.isNaN(v)) throw new SignalError(`no samples of ${s.name} on ${s.topic} within its keep`)
  s.values[label] = v
  return v
}

function ageMs(s: SignalRef, _ms: number, label: string): number {
  const t = s.series ? s.series.lastTime(s.now - s.keepMs, s.now) : NaN
  // No sample kept: infinitely old, so freshness checks like age_ms(s) < 1000 fail instead of erroring.
  const v = Number.isNaN(t) ? Infinity : s.now - t
  s.values[label] = Number.isFinite(v) ? v : null
  return v
}

function count(s: SignalRef, ms: number, label: string): bigint {
  const n = s.series ? s.series.count(from(s, ms), s.now) : 0
  s.values[label] = n
  return BigInt(n)
}

function slope(s: SignalRef, ms: number, label: string, w: string): number {
  const v = s.series ? s.series.slopePerSecond(from(s, ms), s.now) : NaN
  if (Number.isNaN(v)) {
    const n = s.series ? s.series.count(from(s, ms), s.now) : 0
    throw new SignalError(`slope of ${s.name} on ${s.topic} needs 2 samples at distinct times within ${w}, has ${n}`)
  }
  s.values[label] = v
  return v
}

/**
 * The functions this module adds: parameter help for error messages, the CEL type they return, and the
 * implementation that both the library's evaluator and compiled expressions (signalCallSite) call.
 */
export const SIGNAL_FUNCTIONS: Record<string, { windowed: boolean; usage: string; returns: 'double' | 'int'; impl: SignalFn }> = {
  last: { windowed: false, usage: 'last(signal)', returns: 'double', impl: last },
  age_ms: { windowed: false, usage: 'age_ms(signal)', returns: 'double', impl: ageMs },
  avg: { windowed: true, usage: 'avg(signal, "<duration>")', returns: 'double', impl: aggregate('mean') },
  min: { windowed: true, usage: 'min(signal, "<duration>")', returns: 'double', impl: aggregate('min') },
  max: { windowed: true, usage: 'max(signal, "<duration>")', returns: 'double', impl: aggregate('max') },
  count: { windowed: true, usage: 'count(signal, "<duration>")', returns: 'int', impl: count },
  slope: { windowed: true, usage: 'slope(signal, "<duration>")', returns: 'double', impl: slope },
}

/**
 * One call of a signal function on a named signal with its window literal, resolved once: a compiled
 * expression calls it with the signal's ref (see cel-compile.ts). Undefined for a name that is not a signal
 * function, or a window that is missing, extra or malformed.
 */
export function signalCallSite(fn: string, signal: string, window: string | undefined): ((s: SignalRef) => number | bigint) | undefined {
  const f = SIGNAL_FUNCTIONS[fn]
  if (f === undefined || f.windowed !== (window !== undefined)) return undefined
  const ms = window === undefined ? 0 : parseDuration(window)
  if (ms === undefined) return undefined
  const { impl } = f
  const w = window ?? ''
  const label = signalLabel(fn, signal, window)
  return (s) => impl(s, ms, label, w)
}

function createBase(): Environment {
  let env = new Environment({ unlistedVariablesAreDyn: false, homogeneousAggregateLiterals: false }).registerType('Signal', SignalRef)
  for (const [name, { windowed, returns, impl }] of Object.entries(SIGNAL_FUNCTIONS)) {
    const sig = `${name}(Signal${windowed ? ', string' : ''}): ${returns}`
    env = windowed
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
