// Test files of `flashcheck rules test` (rules/README.md, rules/test-schema.json): parsed with positions so
// every problem is reported as file:line:col.
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type YAMLMap } from 'yaml'
import { parseSeries } from './series.js'

export interface Position {
  line: number
  col: number
}

export class TestFileError extends Error {
  constructor(readonly file: string, readonly line: number, readonly col: number, message: string) {
    super(message)
  }

  get located(): string {
    return `${this.file}:${this.line}:${this.col}: ${this.message}`
  }
}

export interface SignalFeed {
  topic: string
  startMs: number
  intervalMs: number
  values: (number | null)[]
  payload?: string
}

export interface Expect {
  verdict?: string
  checks?: Record<string, boolean>
  error?: string
  model?: Record<string, unknown>
  inspection?: string
  fallback?: boolean
}

export interface TestRequest {
  atMs: number
  topic: string
  payload: Buffer
  expect: Expect
  pos: Position
}

export interface TestCase {
  name: string
  pos: Position
  signals: SignalFeed[]
  requests: TestRequest[]
  /** Stand-in model answers by inspection id; undefined: none given. */
  choices?: Record<string, string>
}

export interface TestFile {
  file: string
  /** Absolute rules directory (rules_dir relative to the file), undefined when the file names none. */
  rulesDir?: string
  tests: TestCase[]
}

const TOP_KEYS = ['rules_dir', 'tests']
const TEST_KEYS = ['name', 'signals', 'requests', 'model']
const SIGNAL_KEYS = ['topic', 'start_ms', 'interval_ms', 'values', 'payload']
const REQUEST_KEYS = ['at_ms', 'topic', 'payload', 'expect']
const EXPECT_KEYS = ['verdict', 'checks', 'error', 'model', 'inspection', 'fallback']

export async function readTestFile(file: string): Promise<TestFile> {
  let src: string
  try {
    src = await readFile(file, 'utf8')
  } catch (e) {
    throw new TestFileError(file, 1, 1, `cannot read: ${(e as Error).message}`)
  }
  return parseTestFile(file, src)
}

export function parseTestFile(file: string, src: string): TestFile {
  const lc = new LineCounter()
  const doc = parseDocument(src, { lineCounter: lc, uniqueKeys: true, prettyErrors: false })
  const first = doc.errors[0]
  if (first) {
    const p = lc.linePos(first.pos[0])
    throw new TestFileError(file, p.line, p.col, first.message.split('\n')[0]!)
  }
  const at = (n: Node | null | undefined): Position => {
    const off = n?.range?.[0]
    return off === undefined ? { line: 1, col: 1 } : lc.linePos(off)
  }
  const fail = (n: Node | null | undefined, msg: string): never => {
    const p = at(n)
    throw new TestFileError(file, p.line, p.col, msg)
  }
  const map = (n: unknown, what: string, keys: string[], required: string[]): YAMLMap => {
    if (!isMap(n)) return fail(n as Node, `${what} must be a mapping`)
    for (const item of n.items) {
      const k = isScalar(item.key) ? String(item.key.value) : ''
      if (!keys.includes(k)) fail(item.key as Node, `unknown key "${k}" in ${what} (allowed: ${keys.join(', ')})`)
    }
    for (const r of required) if (!n.has(r)) fail(n, `${what} needs "${r}"`)
    return n
  }
  const node = (m: YAMLMap, k: string): Node | undefined => m.get(k, true) as Node | undefined
  const str = (m: YAMLMap, k: string, what: string): string => {
    const n = node(m, k)
    if (!isScalar(n) || typeof n.value !== 'string' || n.value === '') return fail(n ?? m, `${what}.${k} must be a non-empty string`)
    return n.value
  }
  const num = (m: YAMLMap, k: string, what: string, dflt?: number): number => {
    const n = node(m, k)
    if (n === undefined && dflt !== undefined) return dflt
    if (!isScalar(n) || typeof n.value !== 'number' || !Number.isFinite(n.value) || n.value < 0) return fail(n ?? m, `${what}.${k} must be a number >= 0 (ms)`)
    return n.value
  }

  const top = map(doc.contents, 'the test file', TOP_KEYS, ['tests'])
  const rulesDirRaw = top.has('rules_dir') ? str(top, 'rules_dir', 'test file') : undefined
  const testsNode = node(top, 'tests')
  if (!isSeq(testsNode) || testsNode.items.length === 0) fail(testsNode ?? top, 'tests must be a non-empty list')
  const tests: TestCase[] = []
  const names = new Set<string>()
  for (const tn of (testsNode as unknown as { items: unknown[] }).items) {
    const t = map(tn, 'a test', TEST_KEYS, ['name', 'requests'])
    const name = str(t, 'name', 'test')
    if (names.has(name)) fail(node(t, 'name'), `duplicate test name "${name}"`)
    names.add(name)
    const what = `test "${name}"`
    const signals: SignalFeed[] = []
    const sn = node(t, 'signals')
    if (sn !== undefined) {
      if (!isSeq(sn)) fail(sn, `${what}: signals must be a list`)
      for (const s of (sn as unknown as { items: unknown[] }).items) {
        const m = map(s, `a signal of ${what}`, SIGNAL_KEYS, ['topic', 'values'])
        const vn = node(m, 'values')
        let values: (number | null)[] = []
        if (isSeq(vn)) {
          for (const v of vn.items) {
            if (!isScalar(v) || typeof v.value !== 'number' || !Number.isFinite(v.value)) fail(v as Node, `${what}: signal values must be numbers`)
            values.push((v as { value: number }).value)
          }
        } else if (isScalar(vn) && typeof vn.value === 'string') {
          try {
            values = parseSeries(vn.value)
          } catch (e) {
            fail(vn, `${what}: ${(e as Error).message}`)
          }
        } else if (isScalar(vn) && typeof vn.value === 'number') values = [vn.value]
        else fail(vn, `${what}: values must be a list of numbers or a series string like "0.2+0.05x10"`)
        if (values.length === 0) fail(vn, `${what}: values is empty`)
        const intervalMs = num(m, 'interval_ms', what, values.length === 1 ? 0 : undefined)
        let payload: string | undefined
        if (m.has('payload')) payload = str(m, 'payload', `signal of ${what}`)
        signals.push({ topic: str(m, 'topic', `signal of ${what}`), startMs: num(m, 'start_ms', what, 0), intervalMs, values, payload })
      }
    }
    const rn = node(t, 'requests')
    if (!isSeq(rn) || rn.items.length === 0) fail(rn ?? t, `${what}: requests must be a non-empty list`)
    const requests: TestRequest[] = []
    for (const r of (rn as unknown as { items: unknown[] }).items) {
      const m = map(r, `a request of ${what}`, REQUEST_KEYS, ['topic', 'expect'])
      const pn = node(m, 'payload')
      let payload: Buffer
      if (pn === undefined) payload = Buffer.from('{}')
      else if (isScalar(pn) && typeof pn.value === 'string') payload = Buffer.from(pn.value) // raw bytes: lets a test send bad JSON
      else payload = Buffer.from(JSON.stringify(pn.toJSON()))
      requests.push({ atMs: num(m, 'at_ms', what, 0), topic: str(m, 'topic', `request of ${what}`), payload, expect: parseExpect(m, what), pos: at(m) })
    }
    let choices: Record<string, string> | undefined
    const mn = node(t, 'model')
    if (mn !== undefined) {
      const mm = map(mn, `model of ${what}`, ['choices'], ['choices'])
      const cn = node(mm, 'choices')
      if (!isMap(cn)) fail(cn ?? mm, `${what}: model.choices must map inspection ids to a choice`)
      choices = {}
      for (const item of (cn as YAMLMap).items) {
        if (!isScalar(item.value) || typeof item.value.value !== 'string') fail((item.value ?? item.key) as Node, `${what}: a model choice must be a label`)
        choices[String((item.key as { value: unknown }).value)] = (item.value as { value: string }).value
      }
    }
    tests.push({ name, pos: at(t), signals, requests, choices })
  }
  return { file, rulesDir: rulesDirRaw === undefined ? undefined : resolve(dirname(file), rulesDirRaw), tests }

  function parseExpect(m: YAMLMap, what: string): Expect {
    const e = map(node(m, 'expect'), `expect of ${what}`, EXPECT_KEYS, [])
    if (e.items.length === 0) fail(e, `${what}: expect names nothing to check`)
    const out: Expect = {}
    if (e.has('verdict')) out.verdict = str(e, 'verdict', 'expect')
    if (e.has('error')) out.error = str(e, 'error', 'expect')
    if (e.has('inspection')) out.inspection = str(e, 'inspection', 'expect')
    if (e.has('fallback')) {
      const f = node(e, 'fallback')
      if (!isScalar(f) || typeof f.value !== 'boolean') fail(f, `${what}: expect.fallback must be true or false`)
      out.fallback = (f as { value: boolean }).value
    }
    if (e.has('checks')) {
      const c = node(e, 'checks')
      if (!isMap(c)) return fail(c, `${what}: expect.checks must map check ids to true/false`)
      out.checks = {}
      for (const item of c.items) {
        if (!isScalar(item.value) || typeof item.value.value !== 'boolean') fail((item.value ?? item.key) as Node, `${what}: expect.checks values must be true or false`)
        out.checks[String((item.key as { value: unknown }).value)] = (item.value as { value: boolean }).value
      }
    }
    if (e.has('model')) {
      const mo = node(e, 'model')
      if (!isMap(mo)) return fail(mo, `${what}: expect.model must be a mapping (e.g. {choice: PASS})`)
      out.model = mo.toJSON() as Record<string, unknown>
    }
    return out
  }
}
