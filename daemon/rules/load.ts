// Loads a rules directory as a whole: either every file is valid and a complete RuleSet comes back, or
// every error of every file does. Pure apart from reading the files; swapping sets is the caller's job.
import { readdir, readFile, stat } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import type { LoadResult, RuleError, SignalSpec } from './types.js'
import { parseRuleFile, type RuleDoc } from './validate.js'
import { compileRule, signalKey } from './compile.js'
import { resolvePath } from './path.js'
import { filtersOverlap } from './topic.js'
import { RuleSetImpl } from './ruleset.js'
import type { RuleImpl } from './rule.js'

export const RULE_FILE = /\.ya?ml$/i
export const MAX_RULE_FILE_BYTES = 1 << 20

export interface LoadOptions {
  defaultBudgetMs: number
  /** Whether a model is configured (model.dir); rules with a reason step are refused without one. */
  model?: boolean
}

export async function loadRuleDir(dir: string, opts: LoadOptions): Promise<LoadResult> {
  let names: string[]
  try {
    const ents = await readdir(dir, { withFileTypes: true })
    names = ents.filter((e) => (e.isFile() || e.isSymbolicLink()) && RULE_FILE.test(e.name) && !e.name.startsWith('.')).map((e) => e.name)
  } catch (e) {
    return { ok: false, errors: [{ file: dir, line: 1, col: 1, message: `cannot read rules directory: ${(e as Error).message}` }] }
  }
  names.sort()
  const files: { name: string; path: string; src: string }[] = []
  const errors: RuleError[] = []
  for (const name of names) {
    const path = join(dir, name)
    try {
      // Parsing runs on the daemon's event loop during a reload; a runaway file must not stall verdicts.
      const size = (await stat(path)).size
      if (size > MAX_RULE_FILE_BYTES) {
        errors.push({ file: path, line: 1, col: 1, message: `rule file is ${size} bytes; the limit is ${MAX_RULE_FILE_BYTES} (split it)` })
        continue
      }
      files.push({ name, path, src: await readFile(path, 'utf8') })
    } catch (e) {
      errors.push({ file: path, line: 1, col: 1, message: `cannot read: ${(e as Error).message}` })
    }
  }
  const res = compileSources(files.map((f) => ({ file: f.path, src: f.src })), opts)
  errors.push(...res.errors)
  if (errors.length > 0 || !res.rules) return { ok: false, errors: sortErrors(errors) }

  const hash = createHash('sha256')
  for (const f of files) hash.update(f.name).update('\0').update(f.src).update('\0')
  const rev = hash.digest('hex').slice(0, 12)
  return { ok: true, set: new RuleSetImpl(rev, dir, res.rules, res.signals) }
}

/** Validates and compiles rule sources (file label + text); used by loadRuleDir and by tests. */
export function compileSources(
  files: { file: string; src: string }[],
  opts: LoadOptions,
): { rules?: RuleImpl[]; signals: SignalSpec[]; errors: RuleError[] } {
  const errors: RuleError[] = []
  const rules: RuleImpl[] = []
  const docs: RuleDoc[] = []
  for (const f of files) {
    const parsed = parseRuleFile(f.file, f.src, opts.defaultBudgetMs)
    errors.push(...parsed.errors)
    if (!parsed.doc) continue
    docs.push(parsed.doc) // for the cross-file checks, even when the file has errors of its own
    if (parsed.doc.reason && opts.model === false) {
      errors.push({ ...parsed.doc.reason.pos, message: `rule '${parsed.doc.id}' has a reason: step, which needs the decoder, but no model is configured: set model.dir (config key model.dir, --model-dir or FLASHCHECK_MODEL_DIR)` })
    }
    if (!parsed.doc.declsOk) continue
    const c = compileRule(parsed.doc, f.src, parsed.lines)
    errors.push(...c.errors)
    if (c.rule && parsed.errors.length === 0) rules.push(c.rule)
  }
  errors.push(...crossFileErrors(docs))
  if (errors.length > 0) return { signals: [], errors }
  return { rules, signals: signalSpecs(docs), errors }
}

function crossFileErrors(docs: RuleDoc[]): RuleError[] {
  const errors: RuleError[] = []
  const ids = new Map<string, RuleDoc>()
  const topics = new Map<string, RuleDoc>()
  for (const d of docs) {
    const first = ids.get(d.id)
    if (first) errors.push({ ...d.idPos, message: `duplicate rule id '${d.id}' (also in ${first.file}:${first.idPos.line}:${first.idPos.col})` })
    else ids.set(d.id, d)
    errors.push(...publishConflicts(d, docs))
    if (d.mode !== 'request') continue
    const other = topics.get(d.filter.mqtt)
    if (other) {
      errors.push({ ...d.topicPos, message: `request topic ${d.topic} is also served by rule '${other.id}' (${other.file}:${other.topicPos.line}:${other.topicPos.col}); a request must map to one rule` })
    } else topics.set(d.filter.mqtt, d)
  }
  return errors
}

/**
 * A streaming rule's verdicts must not land on a topic the daemon itself consumes: on a trigger topic they
 * would trigger rules again (a loop through the broker), on a request topic they would be taken as requests,
 * on a signal topic they would be mixed into sensor histories.
 */
function publishConflicts(d: RuleDoc, docs: RuleDoc[]): RuleError[] {
  if (!d.publish || !d.publishPos) return []
  const pub = d.publish.source
  const at = (o: RuleDoc) => `${o.file}:${o.topicPos.line}:${o.topicPos.col}`
  for (const o of docs) {
    if (filtersOverlap(pub, o.filter.mqtt)) {
      const what = o.mode === 'stream' ? `trigger topic ${o.topic} of rule '${o.id}' (${at(o)}): its verdicts would trigger ${o === d ? 'it' : 'that rule'} again` : `request topic ${o.topic} of rule '${o.id}' (${at(o)}): its verdicts would be taken as requests`
      return [{ ...d.publishPos, message: `publish topic ${pub} overlaps the ${what}` }]
    }
    for (const s of o.signals) {
      if (filtersOverlap(pub, s.filter)) return [{ ...d.publishPos, message: `publish topic ${pub} overlaps signal topic ${s.filter} of rule '${o.id}' (${at(o)}): its verdicts would be read as sensor samples` }]
    }
  }
  return []
}

/** One spec per (filter, value path); the longest keep any rule asks for. */
function signalSpecs(docs: RuleDoc[]): SignalSpec[] {
  const byKey = new Map<string, SignalSpec>()
  for (const d of docs) {
    for (const s of d.signals) {
      const key = signalKey(s)
      const old = byKey.get(key)
      if (old) {
        old.keepMs = Math.max(old.keepMs, s.keepMs)
        continue
      }
      const path = s.path
      byKey.set(key, {
        key,
        filter: s.filter,
        value: s.value,
        keepMs: s.keepMs,
        ...(s.sparkplug ? { sparkplug: s.sparkplug } : {}),
        extract: (payload: unknown) => {
          const v = resolvePath(payload, path)
          return typeof v === 'number' ? v : undefined
        },
      })
    }
  }
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
}

export function sortErrors(errors: RuleError[]): RuleError[] {
  return errors.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.col - b.col))
}
