// Turns one rule file's YAML into a checked RuleDoc, or records every problem with its position. Works on
// the YAML node tree (not plain JS values) so each error points at the offending key or value.
// Over 400 lines on purpose: it is the rule format's schema walk, one section parser per key of the format
// (inputs, signals, checks, reason) over the same position-keeping helpers, read top to bottom beside
// rules/README.md; split, each half would need the other's helpers and constants.
import { isMap, isScalar, isSeq, LineCounter, parseDocument, Scalar, type Node, type Pair, type YAMLMap } from 'yaml'
import type { RuleError } from './types.js'
import { parseFilter, TopicFilter, TopicTemplate, type Level } from './topic.js'
import { parsePayloadPath, type Path } from './path.js'
import { DURATION_HELP, parseDuration } from './duration.js'
import { SparkplugSelector } from '../sparkplug/selector.js'

export type InputType = 'number' | 'string' | 'bool' | 'any'

export interface InputDoc {
  name: string
  source: { kind: 'payload'; path: Path } | { kind: 'topic'; level: string }
  from: string
  type: InputType
  hasDefault: boolean
  default: unknown
}

export interface SignalDoc {
  name: string
  /** Renders the concrete history id (an MQTT topic, or a Sparkplug metric address) from bound names. */
  topic: { readonly source: string; render(params: Record<string, string>): string }
  filter: string
  value: string
  path: Path
  keepMs: number
  sparkplug?: SparkplugSelector
}

export interface CheckDoc {
  id: string
  expr: string
  exprNode: Scalar
  onFail: string
  reason?: string
  reasonNode?: Scalar
}

/** The rule's `reason:` step: ask the decoder to choose among labels. */
export interface ReasonDoc {
  pos: { file: string; line: number; col: number }
  prompt: string
  promptNode: Scalar
  system?: string
  choices: string[]
  minConfidence: number
  fallback: string
  combine: 'max' | 'model'
  explain?: { maxTokens: number; topic: TopicTemplate }
}

export interface RuleDoc {
  file: string
  id: string
  idPos: { file: string; line: number; col: number }
  topicPos: { file: string; line: number; col: number }
  mode: 'request' | 'stream'
  topic: string
  filter: TopicFilter
  publish?: TopicTemplate
  publishPos?: { file: string; line: number; col: number }
  budgetMs: number
  verdicts: string[]
  inputs: InputDoc[]
  signals: SignalDoc[]
  checks: CheckDoc[]
  reason?: ReasonDoc
  /** `trigger: {sparkplug: …}`: the metric whose arrival runs the inspection. */
  sparkplugTrigger?: SparkplugSelector
  /** `trace:` the input whose value identifies the part (serial number) in the audit record. */
  trace?: string
  /** False when an input or signal failed validation: expressions then are not compiled (their names would look unknown). */
  declsOk: boolean
}

export const DEFAULT_VERDICTS = ['PASS', 'WARN', 'REWORK', 'FAIL']
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/
const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/
const VERDICT = /^[A-Za-z][A-Za-z0-9_-]*$/
// CEL reserved words and literals cannot name inputs or signals.
const RESERVED = new Set([
  'true', 'false', 'null', 'in', 'as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if',
  'import', 'let', 'loop', 'package', 'namespace', 'return', 'var', 'void', 'while',
])
const RULE_KEYS = ['id', 'description', 'request', 'trigger', 'publish', 'budget_ms', 'verdicts', 'inputs', 'signals', 'checks', 'reason', 'trace']
const REASON_KEYS = ['prompt', 'system', 'choices', 'min_confidence', 'fallback', 'combine', 'explain']
const EXPLAIN_KEYS = ['max_tokens', 'topic']
const INPUT_KEYS = ['from', 'type', 'default', 'description']
const SIGNAL_KEYS = ['topic', 'value', 'sparkplug', 'keep', 'description']
const SPARKPLUG_KEYS = ['group', 'node', 'device', 'metric']
const CHECK_KEYS = ['id', 'expr', 'on_fail', 'reason', 'description']
const INPUT_TYPES: InputType[] = ['number', 'string', 'bool', 'any']

/** Records errors for one file, located through the file's LineCounter. */
export class FileErrors {
  readonly list: RuleError[] = []
  constructor(
    readonly file: string,
    readonly src: string,
    readonly lines: LineCounter,
  ) {}

  at(offset: number, message: string): void {
    const p = this.lines.linePos(offset)
    this.list.push({ file: this.file, line: p.line, col: p.col, message })
  }

  node(n: Node | null | undefined, message: string, fallback = 0): void {
    this.at(n?.range?.[0] ?? fallback, message)
  }
}

function describe(n: unknown): string {
  if (isMap(n)) return 'a mapping'
  if (isSeq(n)) return n.items.length === 0 ? 'an empty list' : 'a list'
  if (isScalar(n)) {
    const v = n.value
    if (v === null) return 'null'
    return typeof v === 'string' ? `string "${v}"` : `${typeof v} ${String(v)}`
  }
  return 'nothing'
}

function keyName(p: Pair): string | undefined {
  return isScalar(p.key) && typeof p.key.value === 'string' ? p.key.value : undefined
}

/** Map entries by key; unknown and non-string keys are reported. */
function entries(map: YAMLMap, allowed: string[], where: string, errs: FileErrors): Map<string, Pair> {
  const out = new Map<string, Pair>()
  for (const p of map.items) {
    const k = keyName(p)
    const keyNode = p.key as Node
    if (k === undefined) errs.node(keyNode, `${where}: keys must be strings`, map.range?.[0])
    else if (!allowed.includes(k)) errs.node(keyNode, `${where}: unknown key '${k}' (allowed: ${allowed.join(', ')})`)
    else out.set(k, p)
  }
  return out
}

function str(p: Pair | undefined, what: string, errs: FileErrors, fallback: number): string | undefined {
  const v = p?.value as Node | null | undefined
  if (isScalar(v) && typeof v.value === 'string' && v.value.length > 0) return v.value
  errs.node(v ?? (p?.key as Node), `${what} must be a non-empty string, got ${describe(v)}`, fallback)
  return undefined
}

function keyPos(p: Pair): number {
  return (p.key as Node).range?.[0] ?? 0
}

export function parseRuleFile(file: string, src: string, defaultBudgetMs: number): { doc?: RuleDoc; errors: RuleError[]; lines: LineCounter } {
  const lines = new LineCounter()
  const errs = new FileErrors(file, src, lines)
  const yd = parseDocument(src, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  for (const e of yd.errors) errs.at(e.pos[0], `YAML: ${e.message.split('\n')[0]}`)
  if (yd.errors.length > 0) return { errors: errs.list, lines }
  const root = yd.contents
  if (!isMap(root)) {
    errs.node(root, `a rule file must be a mapping with id, request or trigger, inputs and checks; got ${describe(root)}`)
    return { errors: errs.list, lines }
  }
  const top = entries(root, RULE_KEYS, 'rule', errs)
  const start = root.range?.[0] ?? 0

  const idPair = top.get('id')
  let id: string | undefined
  if (!idPair) errs.at(start, "rule: missing required key 'id'")
  else {
    id = str(idPair, 'id', errs, start)
    if (id !== undefined && !RULE_ID.test(id)) {
      errs.node(idPair.value as Node, `id '${id}' may use only letters, digits, '_', '.', '-' and must start with a letter or digit`)
    }
  }
  const desc = top.get('description')
  if (desc) str(desc, 'description', errs, start)

  // Mode and topic
  const req = top.get('request')
  const trig = top.get('trigger')
  const pub = top.get('publish')
  let mode: 'request' | 'stream' = 'request'
  let filter: TopicFilter | undefined
  let topicText: string | undefined
  let publish: TopicTemplate | undefined
  let sparkplugTrigger: SparkplugSelector | undefined
  const parseTopicAt = (p: Pair, what: string): TopicFilter | undefined => {
    const text = str(p, what, errs, start)
    if (text === undefined) return undefined
    const r = parseFilter(text)
    if ('problem' in r) {
      errs.at(valueTextOffset(p.value as Scalar, r.problem.offset), `${what}: ${r.problem.message}`)
      return undefined
    }
    return new TopicFilter(text, r.levels)
  }
  if (req && trig) errs.node(trig.key as Node, "a rule has either 'request' (request/response) or 'trigger' (streaming), not both")
  else if (req) {
    topicText = str(req, 'request', errs, start)
    filter = parseTopicAt(req, 'request')
    if (pub) errs.node(pub.key as Node, "'publish' belongs to streaming rules (with 'trigger'); request rules answer on the reply topic")
  } else if (trig && isMap(trig.value)) {
    // `trigger: {sparkplug: {group, node, device?, metric}}`: the inspection runs when that metric arrives; the
    // address's {name} placeholders bind names as a topic's do.
    mode = 'stream'
    const tm = entries(trig.value, ['sparkplug'], 'trigger', errs)
    const sp = tm.get('sparkplug')
    if (!sp) errs.node(trig.value, "trigger: a mapping here must be {sparkplug: {group, node, device?, metric}}")
    else sparkplugTrigger = parseSparkplugAddress(sp, undefined, 'trigger: sparkplug', errs)
    if (sparkplugTrigger) {
      topicText = sparkplugTrigger.source
      // No MQTT topic can contain NUL: the rule is reached through the Sparkplug handler only.
      filter = new TopicFilter(topicText, [{ kind: 'literal', text: '\u0000sparkplug' }, ...sparkplugTrigger.names.map((name) => ({ kind: 'name' as const, name }))])
    }
    if (!pub) errs.node(trig.key as Node, "a streaming rule ('trigger') needs 'publish: <topic>' for its verdicts")
  } else if (trig) {
    mode = 'stream'
    topicText = str(trig, 'trigger', errs, start)
    filter = parseTopicAt(trig, 'trigger')
    if (!pub) errs.node(trig.key as Node, "a streaming rule ('trigger') needs 'publish: <topic>' for its verdicts")
  } else errs.at(start, "rule: missing 'request: <topic filter>' (or 'trigger:' plus 'publish:' for streaming)")
  if (pub && trig) {
    const text = str(pub, 'publish', errs, start)
    if (text !== undefined) {
      const r = parseFilter(text)
      if ('problem' in r) errs.at(valueTextOffset(pub.value as Scalar, r.problem.offset), `publish: ${r.problem.message}`)
      else if (checkTemplate(r.levels, filter, pub, 'publish', errs)) publish = new TopicTemplate(text, r.levels)
    }
  }

  // Budget
  let budgetMs = defaultBudgetMs
  const bp = top.get('budget_ms')
  if (bp) {
    const v = bp.value as Node
    if (isScalar(v) && typeof v.value === 'number' && Number.isFinite(v.value) && v.value > 0) budgetMs = v.value
    else errs.node(v ?? (bp.key as Node), `budget_ms must be a positive number of milliseconds, got ${describe(v)}`)
  }

  // Verdicts
  let verdicts = DEFAULT_VERDICTS
  const vp = top.get('verdicts')
  if (vp) {
    const v = vp.value as Node
    if (!isSeq(v) || v.items.length === 0) errs.node(v ?? (vp.key as Node), `verdicts must be a non-empty list of labels in ascending severity, got ${describe(v)}`)
    else {
      const list: string[] = []
      for (const it of v.items as Node[]) {
        const label = isScalar(it) && typeof it.value === 'string' ? it.value : undefined
        if (label === undefined || !VERDICT.test(label)) errs.node(it, `verdict labels are words of letters, digits, '_' or '-', got ${describe(it)}`)
        else if (label === 'ERROR') errs.node(it, "'ERROR' is reserved for input and evaluation errors and cannot be a verdict label")
        else if (list.includes(label)) errs.node(it, `verdict '${label}' is listed twice`)
        else list.push(label)
      }
      verdicts = list
    }
  }

  // Inputs
  const declErrorsFrom = errs.list.length
  const inputs: InputDoc[] = []
  const ip = top.get('inputs')
  if (ip) {
    const v = ip.value as Node
    if (!isMap(v)) errs.node(v ?? (ip.key as Node), `inputs must be a mapping of name: source, got ${describe(v)}`)
    else for (const p of v.items) {
      const inp = parseInput(p, filter, errs)
      if (inp) inputs.push(inp)
    }
  }

  // Signals
  const signals: SignalDoc[] = []
  const sp = top.get('signals')
  if (sp) {
    const v = sp.value as Node
    if (!isMap(v)) errs.node(v ?? (sp.key as Node), `signals must be a mapping of name: {topic, value, keep}, got ${describe(v)}`)
    else for (const p of v.items) {
      const name = keyName(p)
      if (name !== undefined && inputs.some((i) => i.name === name)) {
        errs.node(p.key as Node, `'${name}' is both an input and a signal`)
        continue
      }
      const s = parseSignal(p, filter, errs)
      if (s) signals.push(s)
    }
  }

  const declsOk = errs.list.length === declErrorsFrom

  // Trace: the input that identifies the part (serial, VIN, lot) in the audit journal and the response.
  let trace: string | undefined
  const tp = top.get('trace')
  if (tp) {
    const v = tp.value as Node
    const name = isScalar(v) && typeof v.value === 'string' ? v.value : undefined
    if (name === undefined) errs.node(v ?? (tp.key as Node), `trace must name an input, got ${describe(v)}`)
    else if (!inputs.some((i) => i.name === name)) {
      const known = inputs.map((i) => i.name)
      errs.node(v, `trace: '${name}' is not an input of this rule${known.length ? ` (inputs: ${known.join(', ')})` : ' (it declares no inputs)'}`)
    } else trace = name
  }

  // Checks
  const checks: CheckDoc[] = []
  const cp = top.get('checks')
  if (!cp) errs.at(start, "rule: missing required key 'checks' (a list of {id, expr, on_fail})")
  else {
    const v = cp.value as Node
    if (!isSeq(v) || v.items.length === 0) errs.node(v ?? (cp.key as Node), `checks must be a non-empty list, got ${describe(v)}`)
    else for (const it of v.items as Node[]) {
      const c = parseCheck(it, verdicts, errs)
      if (c) {
        if (checks.some((o) => o.id === c.id)) errs.node(it, `check id '${c.id}' is used twice in this rule`)
        else checks.push(c)
      }
    }
  }

  const rsp = top.get('reason')
  const reason = rsp ? parseReason(rsp, verdicts, filter, errs, file, lines) : undefined

  // With errors elsewhere the doc still comes back, so expression errors are reported in the same run.
  if (id === undefined || filter === undefined || topicText === undefined) return { errors: errs.list, lines }
  const posOf = (n: Node): { file: string; line: number; col: number } => ({ file, ...lines.linePos(n.range?.[0] ?? 0) })
  return {
    lines,
    doc: { file, id, idPos: posOf(idPair!.value as Node), topicPos: posOf((req ?? trig)!.value as Node), mode, topic: topicText, filter, publish, publishPos: publish && pub ? posOf(pub.value as Node) : undefined, budgetMs, verdicts, inputs, signals, checks, reason, trace, declsOk, ...(sparkplugTrigger ? { sparkplugTrigger } : {}) },
    errors: errs.list,
  }
}

/** Source offset of character `i` of a scalar's text (exact for plain and quoted single-line scalars). */
export function valueTextOffset(n: Scalar, i: number): number {
  const start = n.range?.[0] ?? 0
  if (n.type === Scalar.QUOTE_DOUBLE || n.type === Scalar.QUOTE_SINGLE) return start + 1 + i
  if (n.type === Scalar.PLAIN) return start + i
  return start
}

/** {name} levels of a signal topic or publish template must be bound by the rule's own topic; no wildcards. */
function checkTemplate(levels: Level[], filter: TopicFilter | undefined, p: Pair, what: string, errs: FileErrors): boolean {
  let ok = true
  let offset = 0
  for (const l of levels) {
    const at = valueTextOffset(p.value as Scalar, offset)
    if (l.kind === 'plus' || l.kind === 'hash') {
      errs.at(at, `${what}: wildcards are not allowed here; name the level and bind it through the rule's topic, e.g. {station}`)
      ok = false
    } else if (l.kind === 'name' && filter && !filter.names.includes(l.name)) {
      const bound = filter.names.length ? filter.names.map((n) => `{${n}}`).join(', ') : 'none'
      errs.at(at, `${what}: {${l.name}} is not bound by the rule's topic ${filter.source} (bound: ${bound})`)
      ok = false
    }
    offset += (l.kind === 'literal' ? l.text.length : l.kind === 'name' ? l.name.length + 2 : 1) + 1
  }
  return ok
}

function checkName(p: Pair, what: string, errs: FileErrors): string | undefined {
  const name = keyName(p)
  if (name === undefined) errs.node(p.key as Node, `${what} names must be strings`)
  else if (!IDENT.test(name)) errs.node(p.key as Node, `${what} name '${name}' must be an identifier (letters, digits, '_'; not starting with a digit)`)
  else if (RESERVED.has(name)) errs.node(p.key as Node, `${what} name '${name}' is a reserved word of the expression language`)
  else return name
  return undefined
}

function parseInput(p: Pair, filter: TopicFilter | undefined, errs: FileErrors): InputDoc | undefined {
  const name = checkName(p, 'input', errs)
  const v = p.value as Node | null
  let fromNode: Node | null | undefined = v
  let typeNode: Node | undefined
  let defNode: Node | undefined
  if (isMap(v)) {
    const m = entries(v, INPUT_KEYS, `input ${name ?? ''}`.trim(), errs)
    const f = m.get('from')
    if (!f) {
      errs.node(v, `input ${name}: missing 'from: payload.<path> | topic.<name>'`)
      return undefined
    }
    fromNode = f.value as Node
    typeNode = m.get('type')?.value as Node | undefined
    defNode = m.get('default')?.value as Node | undefined
    if (m.get('default') && !defNode) defNode = m.get('default')!.key as Node
    const d = m.get('description')
    if (d) str(d, 'description', errs, keyPos(p))
  }
  if (!isScalar(fromNode) || typeof fromNode.value !== 'string') {
    errs.node(fromNode ?? (p.key as Node), `input ${name}: source must be 'payload', 'payload.<path>' or 'topic.<name>', got ${describe(fromNode)}`, keyPos(p))
    return undefined
  }
  const from = fromNode.value
  let source: InputDoc['source'] | undefined
  const path = parsePayloadPath(from)
  if (path) source = { kind: 'payload', path }
  else if (from.startsWith('topic.')) {
    const level = from.slice('topic.'.length)
    if (filter && !filter.names.includes(level)) {
      const bound = filter.names.length ? filter.names.map((n) => `{${n}}`).join(', ') : 'none'
      errs.node(fromNode, `input ${name}: topic level {${level}} is not named in the rule's topic ${filter.source} (named: ${bound})`)
    } else source = { kind: 'topic', level }
  } else errs.node(fromNode, `input ${name}: source must be 'payload', 'payload.<path>' or 'topic.<name>', got "${from}"`)

  // Predictable default types: payload values are numbers, topic levels strings, the whole payload any.
  let type: InputType = source?.kind === 'topic' ? 'string' : path && path.length === 0 ? 'any' : 'number'
  if (typeNode) {
    if (isScalar(typeNode) && INPUT_TYPES.includes(typeNode.value as InputType)) type = typeNode.value as InputType
    else errs.node(typeNode, `input ${name}: type must be one of ${INPUT_TYPES.join(', ')}, got ${describe(typeNode)}`)
  }
  if (source?.kind === 'topic' && type !== 'string' && type !== 'any') {
    errs.node(typeNode, `input ${name}: topic levels are strings; use type string (or any)`)
  }
  let def: unknown
  if (defNode) {
    def = isScalar(defNode) ? defNode.value : defNode.toJSON()
    if (!typeMatches(type, def)) {
      errs.node(defNode, `input ${name}: default must be a ${type}, got ${describe(defNode)}`)
    }
  }
  if (name === undefined || source === undefined) return undefined
  return { name, source, from, type, hasDefault: defNode !== undefined, default: def }
}

export function typeMatches(type: InputType, v: unknown): boolean {
  switch (type) {
    case 'number':
      return typeof v === 'number' && Number.isFinite(v)
    case 'string':
      return typeof v === 'string'
    case 'bool':
      return typeof v === 'boolean'
    case 'any':
      return v !== undefined && v !== null
  }
}

function parseSignal(p: Pair, filter: TopicFilter | undefined, errs: FileErrors): SignalDoc | undefined {
  const name = checkName(p, 'signal', errs)
  const v = p.value as Node | null
  if (!isMap(v)) {
    errs.node(v ?? (p.key as Node), `signal ${name}: must be a mapping {topic, value, keep}, got ${describe(v)}`)
    return undefined
  }
  const m = entries(v, SIGNAL_KEYS, `signal ${name ?? ''}`.trim(), errs)
  const start = v.range?.[0] ?? 0
  let topic: SignalDoc['topic'] | undefined
  let mqtt: string | undefined
  let sparkplug: SparkplugSelector | undefined
  const tp = m.get('topic')
  const spp = m.get('sparkplug')
  if (spp) {
    if (tp) errs.node(tp.key as Node, `signal ${name}: give either 'topic' (JSON) or 'sparkplug' (Sparkplug B metric), not both`)
    const vk = m.get('value')
    if (vk) errs.node(vk.key as Node, `signal ${name}: 'value' belongs to JSON signals; a Sparkplug signal reads the metric's value`)
    sparkplug = parseSparkplugAddress(spp, filter, `signal ${name}: sparkplug`, errs)
    if (sparkplug) {
      topic = sparkplug
      mqtt = sparkplug.filter
    }
  } else if (!tp) errs.at(start, `signal ${name}: missing 'topic' (or 'sparkplug')`)
  else {
    const text = str(tp, `signal ${name}: topic`, errs, start)
    if (text !== undefined) {
      const r = parseFilter(text)
      if ('problem' in r) errs.at(valueTextOffset(tp.value as Scalar, r.problem.offset), `signal ${name}: topic: ${r.problem.message}`)
      else if (checkTemplate(r.levels, filter, tp, `signal ${name}: topic`, errs)) {
        topic = new TopicTemplate(text, r.levels)
        mqtt = new TopicFilter(text, r.levels).mqtt
      }
    }
  }
  let value = 'payload'
  let path: Path | undefined = []
  const vp = m.get('value')
  if (vp) {
    const text = str(vp, `signal ${name}: value`, errs, start)
    path = text === undefined ? undefined : parsePayloadPath(text)
    if (text !== undefined && !path) errs.node(vp.value as Node, `signal ${name}: value must be 'payload' or 'payload.<path>', got "${text}"`)
    if (text !== undefined) value = text
  }
  let keepMs: number | undefined
  const kp = m.get('keep')
  if (!kp) errs.at(start, `signal ${name}: missing 'keep' (${DURATION_HELP})`)
  else {
    const kv = kp.value as Node
    keepMs = isScalar(kv) && typeof kv.value === 'string' ? parseDuration(kv.value) : undefined
    if (keepMs === undefined) errs.node(kv ?? (kp.key as Node), `signal ${name}: keep must be ${DURATION_HELP}, got ${describe(kv)}`)
  }
  const d = m.get('description')
  if (d) str(d, 'description', errs, start)
  if (name === undefined || topic === undefined || mqtt === undefined || path === undefined || keepMs === undefined) return undefined
  if (sparkplug) return { name, topic, filter: mqtt, value: 'sparkplug', path: [], keepMs, sparkplug }
  return { name, topic, filter: mqtt, value, path, keepMs }
}

/** `{group, node, device?, metric}`: ids without '+', '/', '#'; `{name}` placeholders bound by the rule's topic. */
export function parseSparkplugAddress(p: Pair, filter: TopicFilter | undefined, what: string, errs: FileErrors): SparkplugSelector | undefined {
  const v = p.value as Node | null
  if (!isMap(v)) {
    errs.node(v ?? (p.key as Node), `${what} must be a mapping {group, node, device?, metric}, got ${describe(v)}`)
    return undefined
  }
  const m = entries(v, SPARKPLUG_KEYS, what, errs)
  const start = v.range?.[0] ?? 0
  const parts: Record<string, string> = {}
  let ok = true
  for (const k of SPARKPLUG_KEYS) {
    const e = m.get(k)
    if (!e) {
      if (k !== 'device') {
        errs.at(start, `${what}: missing '${k}'`)
        ok = false
      }
      continue
    }
    const text = str(e, `${what}.${k}`, errs, start)
    if (text === undefined) {
      ok = false
      continue
    }
    const node = e.value as Scalar
    for (const ph of text.matchAll(/\{([^}]*)\}/g)) {
      const n = ph[1]!
      if (!IDENT.test(n)) {
        errs.at(valueTextOffset(node, ph.index!), `${what}.${k}: invalid placeholder {${n}}: use {letters_digits_underscores}`)
        ok = false
      } else if (filter && !filter.names.includes(n)) {
        const bound = filter.names.length ? filter.names.map((x) => `{${x}}`).join(', ') : 'none'
        errs.at(valueTextOffset(node, ph.index!), `${what}.${k}: {${n}} is not bound by the rule's topic ${filter.source} (bound: ${bound})`)
        ok = false
      }
    }
    const bad = k === 'metric' ? -1 : text.replace(/\{[^}]*\}/g, (x) => '_'.repeat(x.length)).search(/[+/#]/)
    if (bad >= 0) {
      errs.at(valueTextOffset(node, bad), `${what}.${k}: Sparkplug ids must not contain '+', '/' or '#'`)
      ok = false
    }
    parts[k] = text
  }
  if (!ok) return undefined
  return new SparkplugSelector({ group: parts.group!, node: parts.node!, device: parts.device, metric: parts.metric! })
}

function parseCheck(n: Node, verdicts: string[], errs: FileErrors): CheckDoc | undefined {
  if (!isMap(n)) {
    errs.node(n, `a check must be a mapping {id, expr, on_fail}, got ${describe(n)}`)
    return undefined
  }
  const m = entries(n, CHECK_KEYS, 'check', errs)
  const start = n.range?.[0] ?? 0
  const need = (k: string): Pair | undefined => {
    const p = m.get(k)
    if (!p) errs.at(start, `check: missing required key '${k}'`)
    return p
  }
  const ip = need('id')
  const ep = need('expr')
  const fp = need('on_fail')
  const id = ip && str(ip, 'check id', errs, start)
  if (id !== undefined && !RULE_ID.test(id)) errs.node(ip!.value as Node, `check id '${id}' may use only letters, digits, '_', '.', '-'`)
  const expr = ep && str(ep, `check ${id}: expr`, errs, start)
  const onFail = fp && str(fp, `check ${id}: on_fail`, errs, start)
  if (onFail !== undefined && !verdicts.includes(onFail)) {
    errs.node(fp!.value as Node, `check ${id}: on_fail '${onFail}' is not one of the verdicts [${verdicts.join(', ')}]`)
  }
  const rp = m.get('reason')
  const reason = rp && str(rp, `check ${id}: reason`, errs, start)
  const d = m.get('description')
  if (d) str(d, 'description', errs, start)
  // A check with a bad on_fail or reason is still returned so its expression gets compiled and reported too.
  if (id === undefined || expr === undefined) return undefined
  return { id, expr, exprNode: ep!.value as Scalar, onFail: onFail ?? '', reason, reasonNode: rp?.value as Scalar | undefined }
}

function parseReason(p: Pair, verdicts: string[], filter: TopicFilter | undefined, errs: FileErrors, file: string, lines: LineCounter): ReasonDoc | undefined {
  const v = p.value as Node | null
  if (!isMap(v)) {
    errs.node(v ?? (p.key as Node), `reason must be a mapping {prompt, choices, fallback, ...}, got ${describe(v)}`, keyPos(p))
    return undefined
  }
  const m = entries(v, REASON_KEYS, 'reason', errs)
  const start = v.range?.[0] ?? keyPos(p)
  const before = errs.list.length
  const pp = m.get('prompt')
  let prompt: string | undefined
  if (!pp) errs.at(start, "reason: missing required key 'prompt' (a template over inputs, signals and {checks})")
  else prompt = str(pp, 'reason: prompt', errs, start)
  let system: string | undefined
  const sp = m.get('system')
  if (sp) system = str(sp, 'reason: system', errs, start)

  const label = (n: Node, what: string): string | undefined => {
    const l = isScalar(n) && typeof n.value === 'string' ? n.value : undefined
    if (l === undefined || !verdicts.includes(l)) {
      errs.node(n, `reason: ${what} must be one of the verdicts [${verdicts.join(', ')}], got ${describe(n)}`)
      return undefined
    }
    return l
  }
  const choices: string[] = []
  const cp = m.get('choices')
  if (!cp) errs.at(start, "reason: missing required key 'choices' (the labels the model chooses among)")
  else {
    const cv = cp.value as Node
    if (!isSeq(cv) || cv.items.length < 2) errs.node(cv ?? (cp.key as Node), `reason: choices must be a list of at least two verdict labels, got ${describe(cv)}`)
    else for (const it of cv.items as Node[]) {
      const l = label(it, 'each choice')
      if (l === undefined) continue
      if (choices.includes(l)) errs.node(it, `reason: choice '${l}' is listed twice`)
      else choices.push(l)
    }
  }
  let minConfidence = 0
  const mp = m.get('min_confidence')
  if (mp) {
    const mv = mp.value as Node
    if (isScalar(mv) && typeof mv.value === 'number' && mv.value >= 0 && mv.value <= 1) minConfidence = mv.value
    else errs.node(mv ?? (mp.key as Node), `reason: min_confidence must be a number from 0 to 1, got ${describe(mv)}`)
  }
  let fallback: string | undefined
  const fp = m.get('fallback')
  if (!fp) errs.at(start, "reason: missing required key 'fallback' (the verdict used when the model is below min_confidence or out of time)")
  else fallback = label(fp.value as Node, 'fallback')
  let combine: 'max' | 'model' = 'max'
  const kp = m.get('combine')
  if (kp) {
    const kv = kp.value as Node
    if (isScalar(kv) && (kv.value === 'max' || kv.value === 'model')) combine = kv.value
    else errs.node(kv ?? (kp.key as Node), `reason: combine must be 'max' (the more severe of checks and model) or 'model', got ${describe(kv)}`)
  }
  let explain: ReasonDoc['explain']
  const ep = m.get('explain')
  if (ep) {
    const ev = ep.value as Node
    if (!isMap(ev)) errs.node(ev ?? (ep.key as Node), `reason: explain must be a mapping {max_tokens, topic}, got ${describe(ev)}`)
    else {
      const em = entries(ev, EXPLAIN_KEYS, 'reason: explain', errs)
      const estart = ev.range?.[0] ?? start
      let maxTokens = 64
      const mt = em.get('max_tokens')
      if (mt) {
        const n = mt.value as Node
        if (isScalar(n) && Number.isInteger(n.value) && (n.value as number) >= 1 && (n.value as number) <= 4096) maxTokens = n.value as number
        else errs.node(n ?? (mt.key as Node), `reason: explain.max_tokens must be an integer from 1 to 4096, got ${describe(n)}`)
      }
      const tp = em.get('topic')
      let topic: TopicTemplate | undefined
      if (!tp) errs.at(estart, "reason: explain: missing required key 'topic'")
      else {
        const text = str(tp, 'reason: explain.topic', errs, estart)
        if (text !== undefined) {
          const r = parseFilter(text)
          if ('problem' in r) errs.at(valueTextOffset(tp.value as Scalar, r.problem.offset), `reason: explain.topic: ${r.problem.message}`)
          else if (checkTemplate(r.levels, filter, tp, 'reason: explain.topic', errs)) topic = new TopicTemplate(text, r.levels)
        }
      }
      if (topic) explain = { maxTokens, topic }
    }
  }
  if (errs.list.length > before || prompt === undefined || fallback === undefined) return undefined
  // A block scalar (`prompt: |`) keeps its final newline; the prompt means the text without it.
  return {
    pos: { file, ...lines.linePos(keyPos(p)) },
    prompt: prompt.replace(/\n+$/, ''),
    promptNode: pp!.value as Scalar,
    system,
    choices,
    minConfidence,
    fallback,
    combine,
    explain,
  }
}
