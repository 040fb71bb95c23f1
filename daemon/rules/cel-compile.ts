// Rule expressions compiled to JavaScript. The CEL library's evaluator walks the checked tree on every call:
// a dispatch per node, a context object per evaluation, Promise checks around every operator above a custom
// function, an argument array and a try/catch per call. On the rules-only hot path that walk cost more than
// the checks themselves. Once the library has type-checked an expression, each node of the subset below has
// one static overload, and the compiled function calls that very overload handler (or the same signal
// function) in the same order, with CEL's error-absorbing && and ||: values and errors are the library's.
// Anything outside the subset (dyn types, macros, field and index access, lists, maps, receiver calls such as
// .matches(), other functions, uint, bytes, time types) keeps the library's evaluator: compileExpression gives
// undefined. test/rules/cel-compile.test.ts checks the two against each other on generated expressions.
import type { ASTNode } from '@marcbachmann/cel-js'
import { signalCallSite } from './functions.js'

export type CompiledExpr = (ctx: Record<string, unknown>) => unknown

/** The library's checked node, with the fields its type checker sets (not in its public typings). */
interface CheckedNode {
  op: string
  args: unknown
  checkedType?: { name: string; hasDynType?: boolean }
  meta?: { alternate?: unknown }
  candidates?: {
    findBinaryOverload(l: unknown, r: unknown): { handler: Handler } | undefined
    findUnaryOverload(t: unknown): { handler: Handler } | undefined
  }
}
type Handler = (...args: unknown[]) => unknown

const SCALAR = new Set(['int', 'double', 'bool', 'string'])
const BINARY = new Set(['==', '!=', '<', '<=', '>', '>=', '+', '-', '*', '/', '%'])
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Not compilable: the caller keeps the library's evaluator. */
class Unsupported extends Error {}

class Emitter {
  readonly consts: unknown[] = []
  readonly helpers: string[] = []

  ref(v: unknown): string {
    this.consts.push(v)
    return `k${this.consts.length - 1}`
  }

  expr(n: CheckedNode): string {
    if (n.meta?.alternate !== undefined) throw new Unsupported('constant alternate')
    switch (n.op) {
      case 'value':
        return this.literal(n)
      case 'id':
        return this.id(n)
      case '&&':
      case '||':
        return this.logical(n)
      case '?:': {
        const [c, t, f] = n.args as CheckedNode[]
        if (typeOf(c!) !== 'bool') throw new Unsupported('condition type')
        return `(${this.expr(c!)} ? ${this.expr(t!)} : ${this.expr(f!)})`
      }
      case '!_':
      case '-_': {
        const a = n.args as CheckedNode
        const h = n.candidates?.findUnaryOverload(scalarType(a))?.handler
        if (h === undefined) throw new Unsupported('unary overload')
        return `${this.ref(h)}(${this.expr(a)}, ${this.ref(n)})`
      }
      case 'call':
        return this.call(n)
      default:
        if (!BINARY.has(n.op)) throw new Unsupported(n.op)
        return this.binary(n)
    }
  }

  private literal(n: CheckedNode): string {
    const v = n.args
    if (v === null || typeof v === 'boolean') return String(v)
    if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string') return this.ref(v)
    throw new Unsupported('literal type')
  }

  private id(n: CheckedNode): string {
    const name = n.args as string
    const t = n.checkedType
    if (!IDENT.test(name) || t === undefined || t.hasDynType === true) throw new Unsupported('variable')
    // The rule binds every declared input (already checked against its declared type) and every signal before
    // any expression runs, so the library's per-read lookup and type check cannot fail here.
    return `c.${name}`
  }

  private binary(n: CheckedNode): string {
    const [l, r] = n.args as CheckedNode[]
    const h = n.candidates?.findBinaryOverload(scalarType(l!), scalarType(r!))?.handler
    if (h === undefined) throw new Unsupported('binary overload')
    return `${this.ref(h)}(${this.expr(l!)}, ${this.expr(r!)}, ${this.ref(n)})`
  }

  /** CEL's && and || absorb an error on one side when the other side alone decides (false for &&, true for ||). */
  private logical(n: CheckedNode): string {
    const [l, r] = n.args as CheckedNode[]
    if (typeOf(l!) !== 'bool' || typeOf(r!) !== 'bool') throw new Unsupported('logical operand type')
    const decides = n.op === '&&' ? 'false' : 'true'
    // The slot is taken before the operands are emitted: their own helpers come after it.
    const slot = this.helpers.push('') - 1
    const name = `f${slot}`
    const left = this.expr(l!)
    const right = this.expr(r!)
    this.helpers[slot] =
      `function ${name}(c) { let l; try { l = ${left} } catch (e) { if (${right} === ${decides}) return ${decides}; throw e } ` +
      `if (l === ${decides}) return ${decides}; return ${right} }`
    return `${name}(c)`
  }

  private call(n: CheckedNode): string {
    const [fn, args] = n.args as [string, CheckedNode[]]
    const sig = args[0]
    if (sig === undefined || sig.op !== 'id' || sig.checkedType?.name !== 'Signal' || args.length > 2) throw new Unsupported('call')
    const w = args[1]
    if (w !== undefined && (w.op !== 'value' || typeof w.args !== 'string')) throw new Unsupported('window')
    const site = signalCallSite(fn, sig.args as string, w?.args as string | undefined)
    if (site === undefined) throw new Unsupported('function')
    return `${this.ref(site)}(${this.id(sig)})`
  }
}

function typeOf(n: CheckedNode): string | undefined {
  return n.checkedType?.hasDynType === true ? undefined : n.checkedType?.name
}

function scalarType(n: CheckedNode): unknown {
  const t = typeOf(n)
  if (t === undefined || !SCALAR.has(t)) throw new Unsupported('operand type')
  return n.checkedType
}

/** A checked expression as a JavaScript function of the rule's bindings, or undefined outside the subset. */
export function compileExpression(ast: ASTNode): CompiledExpr | undefined {
  const e = new Emitter()
  let body: string
  try {
    body = e.expr(ast as unknown as CheckedNode)
  } catch (err) {
    if (err instanceof Unsupported) return undefined
    throw err
  }
  const names = e.consts.map((_, i) => `k${i}`)
  const src = `"use strict";\nconst [${names.join(', ')}] = K;\n${e.helpers.join('\n')}\nreturn function compiledCel(c) { return ${body} }`
  try {
    return new Function('K', src)(e.consts) as CompiledExpr
  } catch (err) {
    // A process run with --disallow-code-generation-from-strings refuses new Function: the library evaluates.
    if (err instanceof EvalError) return undefined
    throw err
  }
}
