// Response writers compiled per shape. The responses of one rule repeat a few shapes: the same checks with the
// same value names, the same inputs, the same inspection, rules_rev and node. A writer compiled for a shape has
// that text joined into a few constants and reads each value by name, so a response is a short chain of
// strings: building it and flattening it into the bytes the MQTT client sends cost about a third less than
// the generic writer's (responseJson) chain of many small pieces (bench/latency/response-json). Guards send
// every response that is not exactly of the shape (another check, a key more, less or in another order, a
// container that is not a plain object) to the other shapes or to the generic writer, so the text is always
// byte for byte what JSON.stringify writes (test/service/response-shape.test.ts checks both against it).
import type { Response } from './response.js'
import { checkOpening, label, optionalFields, responseJson, str, value } from './response-json.js'

/** Writes r when it has the writer's shape; undefined sends it elsewhere. */
type ShapeWriter = (r: Response) => string | undefined

/** Shapes kept per owner (a rule): its verdicts, errors and short-circuited checks rarely make more. */
const SHAPES_MAX = 6
/** While every kept shape misses, one in this many misses replaces the shape that matched least since the last. */
const REPLACE_EVERY = 128
/** Objects with more keys than this are not compiled into a shape (the generic writer takes them). */
const SHAPE_KEYS_MAX = 64

interface Shapes {
  writers: ShapeWriter[]
  hits: number[]
  misses: number
  /** A shape of this owner could not be compiled: further attempts are as rare as replacements. */
  refused: boolean
}

const byOwner = new WeakMap<object, Shapes>()
const OBJECT_PROTO = Object.prototype

/**
 * The response as published, through the shapes compiled for `owner` (the rule that answered; one owner's
 * responses share shapes), compiling the response's own shape when none fits. Without an owner, or where
 * the process may not compile code, the generic writer.
 */
export function shapedResponseJson(owner: object | undefined, r: Response): string {
  if (owner === undefined || !compiling) return responseJson(r)
  let s = byOwner.get(owner)
  if (s !== undefined) {
    const w = s.writers
    for (let i = 0; i < w.length; i++) {
      const out = w[i]!(r)
      if (out !== undefined) {
        s.hits[i]!++
        return out
      }
    }
  } else byOwner.set(owner, (s = { writers: [], hits: [], misses: 0, refused: false }))
  learn(s, r)
  return responseJson(r)
}

/** Adds r's shape while there is room; when full, replaces the least used one every REPLACE_EVERY misses. */
function learn(s: Shapes, r: Response): void {
  s.misses++
  if ((s.writers.length >= SHAPES_MAX || s.refused) && s.misses % REPLACE_EVERY !== 0) return
  const w = compileShape(r)
  if (w === undefined) {
    s.refused = true
    return
  }
  let at = s.writers.length
  if (at >= SHAPES_MAX) {
    at = 0
    for (let i = 1; i < s.hits.length; i++) if (s.hits[i]! < s.hits[at]!) at = i
    s.hits.fill(0)
  }
  s.writers[at] = w
  s.hits[at] = 0
}

/** False once the process refused code generation (--disallow-code-generation-from-strings). */
let compiling = true

/** Helpers the generated code calls: the generic writer's own, so quoting and numbers cannot differ. */
const HELPERS = { str, label, value, optionalFields, OBJECT_PROTO }

/** JavaScript source of a string literal. */
const lit = (s: string): string => JSON.stringify(s)

/**
 * Source of a writer for r's shape. The text between values is gathered into `parts` (constants merge), the
 * guards and value reads into `body`; a value read that gives undefined (a member JSON.stringify would leave
 * out) returns undefined, so the generic writer handles it.
 */
export function compileShape(r: Response): ShapeWriter | undefined {
  const body: string[] = []
  const parts: Array<{ text: string } | { expr: string }> = []
  const keyLists: string[][] = []
  let vars = 0
  const text = (t: string) => {
    const last = parts[parts.length - 1]
    if (last !== undefined && 'text' in last) last.text += t
    else parts.push({ text: t })
  }
  const expr = (e: string) => parts.push({ expr: e })

  /** An object (inputs, a check's values) at `depth` whose sample is `sample`, read from the source expression `src`. */
  const object = (src: string, sample: unknown, depth: number): boolean => {
    if (sample === null || typeof sample !== 'object' || Object.getPrototypeOf(sample) !== OBJECT_PROTO) {
      // Not a plain object: written as a whole by the generic writer, at the same depth ('null' where it
      // writes nothing, as responseJson does).
      expr(`(value(${src}, ${depth}) ?? 'null')`)
      return true
    }
    const keys: string[] = []
    for (const k in sample) keys.push(k)
    if (keys.length > SHAPE_KEYS_MAX || keys.includes('toJSON')) return false
    const o = `o${vars++}`
    const list = keyLists.push(keys) - 1
    body.push(`const ${o} = ${src};`)
    body.push(`if (${o} === null || typeof ${o} !== 'object' || Object.getPrototypeOf(${o}) !== OBJECT_PROTO || ${o}.toJSON !== undefined) return undefined;`)
    // The same keys in the same order, as for-in (and so JSON.stringify) walks them.
    body.push(`{ const K = KEYS[${list}]; let j = 0; for (const k in ${o}) if (k !== K[j++]) return undefined; if (j !== ${keys.length}) return undefined; }`)
    text('{')
    keys.forEach((k, i) => {
      const v = `v${vars++}`
      const x = `x${vars++}`
      // Numbers, the usual member, are written here (finite ones as text, the others as null, as value() does);
      // value() takes the rest.
      body.push(`const ${x} = ${o}[${lit(k)}]; const ${v} = typeof ${x} === 'number' ? (${x} - ${x} === 0 ? '' + ${x} : 'null') : value(${x}, ${depth + 1}); if (${v} === undefined) return undefined;`)
      text((i === 0 ? '' : ',') + str(k) + ':')
      expr(v)
    })
    text('}')
    return true
  }

  const constant = (field: string, v: string | null) => {
    body.push(`if (r.${field} !== ${v === null ? 'null' : lit(v)}) return undefined;`)
    return v === null ? 'null' : str(v)
  }

  text('{"verdict_id":')
  expr('str(r.verdict_id)')
  text(',"ts":')
  expr('str(r.ts)')
  text(',"inspection":' + constant('inspection', r.inspection) + ',"verdict":')
  expr('label(r.verdict)')
  text(',"checks":[')
  body.push(`const C = r.checks; if (C.length !== ${r.checks.length}) return undefined;`)
  for (let i = 0; i < r.checks.length; i++) {
    const c = r.checks[i]!
    const ci = `c${i}`
    body.push(`const ${ci} = C[${i}]; if (${ci}.id !== ${lit(c.id)} || ${ci}.on_fail !== ${lit(c.on_fail)}) return undefined;`)
    // A check's opening for either outcome, then reason or error when present, as the generic writer does.
    const head = (ok: boolean) => lit((i === 0 ? '' : ',') + checkOpening(c.id, ok, c.on_fail))
    expr(`(${ci}.ok ? ${head(true)} : ${head(false)})`)
    expr(`(${ci}.reason === undefined ? '' : ',"reason":' + str(${ci}.reason))`)
    expr(`(${ci}.error === undefined ? '' : ',"error":' + str(${ci}.error))`)
    text(',"values":')
    if (!object(`${ci}.values`, c.values, 2)) return undefined
    text('}')
  }
  text('],"inputs":')
  if (!object('r.inputs', r.inputs, 1)) return undefined
  text(',"latency_ms":')
  expr('value(r.latency_ms, 1)')
  text(',"deadline_missed":')
  expr(`(r.deadline_missed ? 'true' : 'false')`)
  text(',"rules_rev":' + constant('rules_rev', r.rules_rev) + ',"node":' + constant('node', r.node))
  expr('optionalFields(r)')
  text('}')

  const joined = parts.map((p) => ('text' in p ? lit(p.text) : p.expr)).join(' + ')
  const src = `const { str, label, value, optionalFields, OBJECT_PROTO } = H;\nreturn function shapeWriter(r) {\n${body.join('\n')}\nreturn ${joined};\n}`
  try {
    return new Function('H', 'KEYS', src)(HELPERS, keyLists) as ShapeWriter
  } catch (e) {
    if (e instanceof EvalError) compiling = false
    return undefined
  }
}
