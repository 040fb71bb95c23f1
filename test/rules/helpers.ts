// Compiles rule sources given inline, for tests that need a rule without a directory.
import { compileSources } from '../../daemon/rules/load.js'
import type { CompiledRule, RuleError, SignalSpec } from '../../daemon/rules/types.js'
import { SignalStore } from '../../daemon/signals/store.js'

export function compileOne(src: string): { rule: CompiledRule; signals: SignalSpec[]; store: SignalStore } {
  const r = compileSources([{ file: 'rule.yaml', src }], { defaultBudgetMs: 50 })
  if (!r.rules) throw new Error(r.errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join('\n'))
  const store = new SignalStore()
  store.configure(r.signals)
  return { rule: r.rules[0]!, signals: r.signals, store }
}

/** The errors of a set of inline files as `file:line:col: message` lines. */
export function errorsOf(files: Record<string, string>): string[] {
  const r = compileSources(Object.entries(files).map(([file, src]) => ({ file, src })), { defaultBudgetMs: 50 })
  return r.errors.map((e: RuleError) => `${e.file}:${e.line}:${e.col}: ${e.message}`)
}

export const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v))
