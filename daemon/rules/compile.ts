// Compiles a validated RuleDoc: every expression is parsed and type-checked once against the rule's own
// inputs and signals, window literals are checked against the signal's keep, and reason templates are
// split into parts. Errors point into the expression text where the library gives a position.
import type { ASTNode, Environment } from '@marcbachmann/cel-js'
import type { RuleError } from './types.js'
import type { CheckDoc, InputDoc, RuleDoc, SignalDoc } from './validate.js'
import { FileErrors, valueTextOffset } from './validate.js'
import { ruleEnvironment, SIGNAL_FUNCTIONS, SignalRef } from './functions.js'
import { DURATION_HELP, parseDuration } from './duration.js'
import { Scalar, LineCounter } from 'yaml'
import { compileExpression } from './cel-compile.js'
import { RuleImpl, type CompiledCheck, type CompiledReason, type PromptPart, type ReasonPart } from './rule.js'

const CEL_TYPE = { number: 'double', string: 'string', bool: 'bool', any: 'dyn' } as const

/** Key of a signal history: the MQTT filter plus the value path. */
export function signalKey(s: SignalDoc): string {
  if (s.sparkplug) return `sparkplug ${s.sparkplug.source}`
  return `${s.filter} ${s.value}`
}

export function compileRule(doc: RuleDoc, src: string, lines: LineCounter): { rule?: RuleImpl; errors: RuleError[] } {
  const errs = new FileErrors(doc.file, src, lines)
  const env = ruleEnvironment()
  for (const i of doc.inputs) env.registerVariable(i.name, CEL_TYPE[i.type])
  for (const s of doc.signals) env.registerVariable(s.name, 'Signal')
  const refs = doc.signals.map((s) => new SignalRef(s.name, signalKey(s), s.keepMs))

  const checks: CompiledCheck[] = []
  for (const c of doc.checks) {
    const cc = compileCheck(c, doc, env, errs, src)
    if (cc) checks.push(cc)
  }
  let reason: CompiledReason | undefined
  if (doc.reason) {
    const declared = doc.inputs.some((i) => i.name === 'checks') || doc.signals.some((s) => s.name === 'checks')
    const penv = ruleEnvironment()
    for (const i of doc.inputs) penv.registerVariable(i.name, CEL_TYPE[i.type])
    for (const s of doc.signals) penv.registerVariable(s.name, 'Signal')
    if (!declared) penv.registerVariable('checks', 'string')
    reason = compileReasonStep(doc, penv, errs, src)
  }
  if (errs.list.length > 0) return { errors: errs.list }
  return { rule: new RuleImpl(doc, checks, refs, reason), errors: [] }
}

type Evaluable = ((ctx: Record<string, unknown>) => unknown) & { ast: ASTNode; check(): { valid: boolean; type?: string; error?: unknown } }

function compileCheck(c: CheckDoc, doc: RuleDoc, env: Environment, errs: FileErrors, src: string): CompiledCheck | undefined {
  const where = `check ${c.id}`
  const at = (i: number): number => exprOffset(c.exprNode, i, src)
  let fn: Evaluable
  try {
    fn = env.parse(c.expr) as unknown as Evaluable
  } catch (e) {
    errs.at(at(rangeStart(e)), `${where}: syntax error: ${summary(e)}`)
    return undefined
  }
  // Walk first: it gives clearer messages (unknown names, bad windows) than the type checker would.
  const before = errs.list.length
  const inputNames = new Set<string>()
  walk(fn.ast, (n) => {
    if (n.op === 'id') {
      const name = n.args as string
      if (doc.inputs.some((i) => i.name === name)) inputNames.add(name)
    }
  })
  checkSignalCalls(fn.ast, doc, errs, at, where)
  if (errs.list.length > before) return undefined

  const r = fn.check()
  if (!r.valid) {
    errs.at(at(rangeStart(r.error)), `${where}: ${explain(r.error, doc)}`)
    return undefined
  }
  if (r.type !== 'bool' && r.type !== 'dyn') {
    errs.at(at(0), `${where}: expr must be a condition (bool); it gives ${r.type}`)
    return undefined
  }
  const reason = c.reason === undefined ? undefined : compileReason(c, doc, errs, src)
  if (c.reason !== undefined && reason === undefined) return undefined
  return { id: c.id, onFail: c.onFail, fn: compileExpression(fn.ast) ?? fn, inputNames: [...inputNames], reason }
}

/** Signal functions need a declared signal first and a literal window no longer than the signal's keep. */
function checkSignalCalls(ast: ASTNode, doc: RuleDoc, errs: FileErrors, at: (i: number) => number, where: string): void {
  walk(ast, (n) => {
    if (n.op !== 'call') return
    const [name, args] = n.args as [string, ASTNode[]]
    const sig = SIGNAL_FUNCTIONS[name]
    if (!sig) return
    const s = args[0]?.op === 'id' ? doc.signals.find((x) => x.name === args[0]!.args) : undefined
    if (args.length !== (sig.windowed ? 2 : 1) || !s) {
      const names = doc.signals.map((x) => x.name).join(', ') || 'none declared'
      errs.at(at(n.range.start), `${where}: use ${sig.usage} with a signal name as its first argument (signals: ${names})`)
      return
    }
    if (sig.windowed) {
      const w = args[1]!
      if (w.op !== 'value' || typeof w.args !== 'string') {
        errs.at(at(w.range.start), `${where}: the window of ${name}() must be a string literal, ${DURATION_HELP}`)
        return
      }
      const ms = parseDuration(w.args)
      if (ms === undefined) errs.at(at(w.range.start), `${where}: invalid window "${w.args}": use ${DURATION_HELP}`)
      else if (ms > s.keepMs) {
        errs.at(at(w.range.start), `${where}: window "${w.args}" is longer than signal ${s.name}'s keep (${fmtMs(s.keepMs)}); raise keep`)
      }
    }
  })
}

function walk(n: unknown, visit: (n: ASTNode) => void): void {
  if (Array.isArray(n)) {
    for (const x of n) walk(x, visit)
    return
  }
  if (n === null || typeof n !== 'object' || !('op' in n)) return
  const node = n as ASTNode
  visit(node)
  if (node.op !== 'value' && node.op !== 'id') walk(node.args, visit)
}

function rangeStart(e: unknown): number {
  const r = (e as { range?: { start?: number } } | undefined)?.range
  return typeof r?.start === 'number' ? r.start : 0
}

function summary(e: unknown): string {
  const x = e as { summary?: string; message?: string }
  return x?.summary ?? String(x?.message ?? e).split('\n')[0]!
}

function explain(e: unknown, doc: RuleDoc): string {
  const code = (e as { code?: string }).code
  const msg = summary(e)
  if (code === 'unknown_variable') {
    const inputs = doc.inputs.map((i) => i.name).join(', ') || 'none'
    const signals = doc.signals.map((s) => s.name).join(', ') || 'none'
    return `${msg.replace('Unknown variable', 'unknown identifier')} (inputs: ${inputs}; signals: ${signals})`
  }
  const m = /found no matching overload for '([A-Za-z_][A-Za-z0-9_]*)\(/.exec(msg)
  if (code === 'no_matching_overload' && m && !SIGNAL_FUNCTIONS[m[1]!] && !knownFunction(m[1]!)) {
    return `unknown function ${m[1]}() (signal functions: ${Object.keys(SIGNAL_FUNCTIONS).join(', ')}; plus the CEL standard library)`
  }
  if (code === 'no_such_overload' && / (double|int) [-+*/%] (double|int)/.test(msg)) {
    return `${msg}: CEL does not mix int and double in arithmetic; write number literals with a decimal point (2.0)`
  }
  return msg
}

let builtins: Set<string> | undefined
function knownFunction(name: string): boolean {
  builtins ??= new Set(ruleEnvironment().getDefinitions().functions.map((f: { name: string }) => f.name))
  return builtins.has(name)
}

function fmtMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
}

/** Source offset of character i of an expression scalar, including block scalars (| and >-style literals). */
function exprOffset(n: Scalar, i: number, src: string): number {
  if (n.type === Scalar.BLOCK_LITERAL) {
    const text = String(n.value)
    const before = text.slice(0, i)
    const lineIdx = before.split('\n').length - 1
    const col = i - (before.lastIndexOf('\n') + 1)
    // Content starts on the line after the `|` header; the block's indentation is that of its first line.
    const first = src.indexOf('\n', n.range?.[0] ?? 0) + 1
    if (first <= 0) return n.range?.[0] ?? 0
    let indent = 0
    while (src[first + indent] === ' ') indent++
    let pos = first
    for (let k = 0; k < lineIdx && pos > 0; k++) pos = src.indexOf('\n', pos) + 1
    if (pos <= 0) return n.range?.[0] ?? 0
    return pos + indent + col
  }
  // Quoted scalars with escapes or folded plain scalars do not map 1:1; fall back to the value start.
  const start = n.range?.[0] ?? 0
  const raw = src.slice(start, n.range?.[1] ?? start)
  const exact = n.type === Scalar.PLAIN ? raw === n.value : raw.slice(1, -1) === n.value
  return exact ? valueTextOffset(n, i) : start
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g

function compileReason(c: CheckDoc, doc: RuleDoc, errs: FileErrors, src: string): ReasonPart[] | undefined {
  const text = c.reason!
  const parts: ReasonPart[] = []
  let last = 0
  let ok = true
  for (const m of text.matchAll(PLACEHOLDER)) {
    const name = m[1]!
    const input: InputDoc | undefined = doc.inputs.find((i) => i.name === name)
    if (!input) {
      errs.at(exprOffset(c.reasonNode!, m.index!, src), `check ${c.id}: reason refers to {${name}}, which is not an input (inputs: ${doc.inputs.map((i) => i.name).join(', ') || 'none'})`)
      ok = false
      continue
    }
    if (m.index! > last) parts.push(text.slice(last, m.index))
    parts.push({ input: name })
    last = m.index! + m[0].length
  }
  if (last < text.length) parts.push(text.slice(last))
  return ok ? parts : undefined
}

/**
 * Splits a reason prompt into literal text and `{expression}` placeholders (CEL over inputs, signals and
 * `checks`, the rendered check results); `{{` and `}}` stand for literal braces.
 */
export function splitPrompt(text: string): { parts: ({ text: string } | { expr: string; at: number })[]; problem?: { at: number; message: string } } {
  const parts: ({ text: string } | { expr: string; at: number })[] = []
  let lit = ''
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === '{' && text[i + 1] === '{') { lit += '{'; i += 2; continue }
    if (c === '}' && text[i + 1] === '}') { lit += '}'; i += 2; continue }
    if (c === '}') return { parts, problem: { at: i, message: "unmatched '}' (write '}}' for a literal brace)" } }
    if (c !== '{') { lit += c; i++; continue }
    // Find the closing brace, skipping string literals so `{avg(vib, "2s")}` and `{x + "}"}` work.
    let j = i + 1
    let quote = ''
    for (; j < text.length; j++) {
      const d = text[j]!
      if (quote) {
        if (d === '\\') j++
        else if (d === quote) quote = ''
      } else if (d === '"' || d === "'") quote = d
      else if (d === '}') break
      else if (d === '{') return { parts, problem: { at: j, message: "'{' inside a placeholder (write '{{' for a literal brace)" } }
    }
    if (j >= text.length) return { parts, problem: { at: i, message: "placeholder '{' is not closed with '}'" } }
    const expr = text.slice(i + 1, j)
    if (expr.trim() === '') return { parts, problem: { at: i, message: 'empty placeholder {}' } }
    if (lit) parts.push({ text: lit })
    lit = ''
    parts.push({ expr, at: i + 1 })
    i = j + 1
  }
  if (lit) parts.push({ text: lit })
  return { parts }
}

function compileReasonStep(doc: RuleDoc, env: Environment, errs: FileErrors, src: string): CompiledReason | undefined {
  const r = doc.reason!
  const at = (i: number): number => exprOffset(r.promptNode, i, src)
  const split = splitPrompt(r.prompt)
  if (split.problem) {
    errs.at(at(split.problem.at), `reason: prompt: ${split.problem.message}`)
    return undefined
  }
  const parts: PromptPart[] = []
  let ok = true
  for (const p of split.parts) {
    if ('text' in p) {
      parts.push(p.text)
      continue
    }
    let fn: Evaluable
    try {
      fn = env.parse(p.expr) as unknown as Evaluable
    } catch (e) {
      errs.at(at(p.at + rangeStart(e)), `reason: prompt {${p.expr}}: syntax error: ${summary(e)}`)
      ok = false
      continue
    }
    const before = errs.list.length
    checkSignalCalls(fn.ast, doc, errs, (i) => at(p.at + i), `reason: prompt {${p.expr}}`)
    if (errs.list.length > before) {
      ok = false
      continue
    }
    const res = fn.check()
    if (!res.valid) {
      errs.at(at(p.at + rangeStart(res.error)), `reason: prompt {${p.expr}}: ${explain(res.error, doc)}`)
      ok = false
      continue
    }
    parts.push({ fn: compileExpression(fn.ast) ?? fn, source: p.expr })
  }
  if (!ok) return undefined
  const first = parts.findIndex((p) => typeof p !== 'string')
  const staticPrefix = first === -1 ? parts.join('') : parts.slice(0, first).join('')
  const ex = r.explain
  return {
    parts,
    step: {
      system: r.system,
      staticPrefix,
      template: r.prompt,
      choices: r.choices,
      minConfidence: r.minConfidence,
      fallback: r.fallback,
      combine: r.combine,
      explain: ex ? { maxTokens: ex.maxTokens, topic: ex.topic.source, render: (params) => ex.topic.render(params) } : undefined,
    },
  }
}
