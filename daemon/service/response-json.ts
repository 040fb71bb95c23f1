// JSON text of a response, byte for byte what JSON.stringify gives (test/service/response-json.test.ts checks
// it against JSON.stringify on generated values). A response repeats the same keys every time (check ids,
// input names, signal labels such as `avg(vib, "2s")`) and holds few, short values: quoting each key once and
// joining plain strings, with the response's own fields written in their fixed order, costs less than the
// generic stringify on the rules-only hot path. The strings a rule set repeats in every response (inspection,
// verdict labels, a check's id and on_fail, rules_rev, node) are quoted once and looked up after that.
// Anything that is not a plain JSON value (toJSON, class instances, bigint, deep nesting) is handed to
// JSON.stringify itself.
import type { CheckResult } from '../rules/types.js'
import type { Response } from './response.js'

/** Entries per cache below: the strings are few and repeat, but a payload could bring many keys. */
const KEYS_MAX = 4096
const DEPTH_MAX = 64
/** Quoted keys with their colon. */
const quotedKeys = new Map<string, string>()
/** Quoted strings that repeat from response to response (labels, ids, the node's name). */
const quotedLabels = new Map<string, string>()
/** A check's opening, `{"id":…,"ok":…,"on_fail":…`, by check id, for both outcomes. */
const checkHeads = new Map<string, { onFail: string; ok: string; failed: string }>()
const OBJECT_PROTO = Object.prototype

/** The response as published. Its fields are written in the order reply() creates them (Response's order). */
export function responseJson(r: Response): string {
  return (
    '{"verdict_id":' + str(r.verdict_id) +
    ',"ts":' + str(r.ts) +
    ',"inspection":' + (r.inspection === null ? 'null' : label(r.inspection)) +
    ',"verdict":' + label(r.verdict) +
    ',"checks":' + checks(r.checks) +
    ',"inputs":' + (value(r.inputs, 1) ?? 'null') +
    ',"latency_ms":' + value(r.latency_ms, 1) +
    ',"deadline_missed":' + (r.deadline_missed ? 'true' : 'false') +
    ',"rules_rev":' + (r.rules_rev === null ? 'null' : label(r.rules_rev)) +
    ',"node":' + label(r.node) +
    optionalFields(r) + '}'
  )
}

/** The fields after `node` that only some responses have, each with its leading comma ('' when none). */
export function optionalFields(r: Response): string {
  let s = ''
  if (r.correlation_id !== undefined) s += ',"correlation_id":' + str(r.correlation_id)
  if (r.trace !== undefined) s += ',"trace":' + str(r.trace)
  if (r.error !== undefined) s += ',"error":' + value(r.error, 1)
  if (r.trigger_topic !== undefined) s += ',"trigger_topic":' + str(r.trigger_topic)
  if (r.model !== undefined) s += ',"model":' + value(r.model, 1)
  if (r.fallback !== undefined) s += ',"fallback":' + (r.fallback ? 'true' : 'false')
  return s
}

/** Any JSON value as JSON.stringify writes it (undefined where it writes nothing). */
export function jsonValue(v: unknown): string | undefined {
  return value(v, 0)
}

/** Check results in the order rule evaluation creates their fields (id, ok, on_fail, reason or error, values). */
function checks(list: CheckResult[]): string {
  let s = '['
  for (let i = 0; i < list.length; i++) {
    const c = list[i]!
    s += i === 0 ? checkHead(c) : ',' + checkHead(c)
    if (c.reason !== undefined) s += ',"reason":' + str(c.reason)
    if (c.error !== undefined) s += ',"error":' + str(c.error)
    s += ',"values":' + (value(c.values, 2) ?? 'null') + '}'
  }
  return s + ']'
}

function checkHead(c: CheckResult): string {
  let h = checkHeads.get(c.id)
  if (h === undefined || h.onFail !== c.on_fail) {
    h = remember(checkHeads, c.id, { onFail: c.on_fail, ok: checkOpening(c.id, true, c.on_fail), failed: checkOpening(c.id, false, c.on_fail) })
  }
  return c.ok ? h.ok : h.failed
}

/** A check's first fields, `{"id":…,"ok":…,"on_fail":…`: what reason or error and values follow. */
export function checkOpening(id: string, ok: boolean, onFail: string): string {
  return '{"id":' + str(id) + ',"ok":' + (ok ? 'true' : 'false') + ',"on_fail":' + str(onFail)
}

/** A string that repeats from response to response, quoted (cached). */
export function label(s: string): string {
  return quotedLabels.get(s) ?? remember(quotedLabels, s, str(s))
}

/** Stores `v` under `k`, emptying the cache first when it is full (payload keys could be endless), and gives `v`. */
function remember<V>(cache: Map<string, V>, k: string, v: V): V {
  if (cache.size >= KEYS_MAX) cache.clear()
  cache.set(k, v)
  return v
}

/** A string as JSON.stringify quotes it. */
export function str(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s)
  }
  return '"' + s + '"'
}

function key(k: string): string {
  return quotedKeys.get(k) ?? remember(quotedKeys, k, str(k) + ':')
}

/**
 * The JSON of v as a member `depth` levels below the response, or undefined where JSON.stringify leaves the
 * member out (undefined, functions, symbols).
 */
export function value(v: unknown, depth: number): string | undefined {
  switch (typeof v) {
    case 'string':
      return str(v)
    case 'number':
      return Number.isFinite(v) ? '' + v : 'null'
    case 'boolean':
      return v ? 'true' : 'false'
    case 'object': {
      if (v === null) return 'null'
      if (depth > DEPTH_MAX) return JSON.stringify(v)
      if (Array.isArray(v)) return array(v, depth)
      const proto = Object.getPrototypeOf(v) as unknown
      if ((proto !== OBJECT_PROTO && proto !== null) || typeof (v as { toJSON?: unknown }).toJSON === 'function') return JSON.stringify(v)
      return object(v as Record<string, unknown>, depth)
    }
    case 'bigint':
      return JSON.stringify(v) // throws, as it would for the whole response
    default:
      return undefined
  }
}

function array(a: unknown[], depth: number): string {
  if (Object.getPrototypeOf(a) !== Array.prototype || typeof (a as { toJSON?: unknown }).toJSON === 'function') return JSON.stringify(a)
  let s = '['
  for (let i = 0; i < a.length; i++) {
    if (i > 0) s += ','
    s += value(a[i], depth + 1) ?? 'null'
  }
  return s + ']'
}

function object(o: Record<string, unknown>, depth: number): string {
  let s = '{'
  let first = true
  // for-in walks own keys in JSON.stringify's order; value() admits only plain objects, whose prototype
  // (Object.prototype or none) has no enumerable keys of its own.
  for (const k in o) {
    const x = value(o[k], depth + 1)
    if (x === undefined) continue
    s += first ? key(k) + x : ',' + key(k) + x
    first = false
  }
  return s + '}'
}
