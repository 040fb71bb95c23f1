// `flashcheck rules test [--rules-dir DIR] [--model-dir DIR] [--junit FILE] FILE...`: runs rule test files on
// a virtual clock, no broker. Exit 0 when every test passes, 1 when any fails, 2 for a malformed test file
// (file:line:col) or bad usage.
import { writeFile } from 'node:fs/promises'
import { readTestFile, TestFileError, type TestFile } from '../ruletest/format.js'
import { junitReport, tapReport } from '../ruletest/report.js'
import { TestRunner, type TestResult } from '../ruletest/runner.js'
import type { RuleSet } from '../rules/types.js'
import type { ModelJudge } from '../service/exchange.js'

export interface TestIo {
  out: (s: string) => void
  err: (s: string) => void
}

const stdio: TestIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }

const USAGE = 'usage: flashcheck rules test [--rules-dir DIR] [--model-dir DIR] [--junit FILE] FILE...\n'

export async function rulesTest(argv: string[], io: TestIo = stdio): Promise<number> {
  let rulesDir: string | undefined
  let modelDir: string | undefined
  let junit: string | undefined
  const files: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const value = (): string | undefined => {
      const v = argv[++i]
      if (v === undefined) io.err(`rules test: ${a} needs a value\n`)
      return v
    }
    if (a === '-h' || a === '--help') {
      io.out(USAGE + '  Runs rule test files (rules/README.md) on a virtual clock; prints ok / not ok per test and "N passed, N failed".\n')
      return 0
    } else if (a === '--rules-dir') {
      if ((rulesDir = value()) === undefined) return 2
    } else if (a === '--model-dir') {
      if ((modelDir = value()) === undefined) return 2
    } else if (a === '--junit') {
      if ((junit = value()) === undefined) return 2
    } else if (a.startsWith('-')) {
      io.err(`rules test: unknown option ${a}\n${USAGE}`)
      return 2
    } else files.push(a)
  }
  if (files.length === 0) {
    io.err(USAGE)
    return 2
  }
  let malformed = false
  const parsed: TestFile[] = []
  for (const f of files) {
    try {
      parsed.push(await readTestFile(f))
    } catch (e) {
      if (!(e instanceof TestFileError)) throw e
      io.err(`${e.located}\n`)
      malformed = true
    }
  }
  const engines: { close(): Promise<void> }[] = []
  const runner = new TestRunner({ rulesDir, model: modelDir === undefined ? undefined : (set) => loadModel(modelDir!, set, engines) })
  const results: TestResult[] = []
  try {
    for (const tf of parsed) results.push(...(await runner.runFile(tf)))
  } finally {
    for (const e of engines) await e.close()
  }
  io.out(tapReport(results))
  if (junit !== undefined) await writeFile(junit, junitReport(results))
  if (malformed) return 2
  return results.every((r) => r.ok) ? 0 : 1
}

/** The real decoder with the daemon's default model settings, its prompt caches built for the set. */
async function loadModel(dir: string, set: RuleSet, engines: { close(): Promise<void> }[]): Promise<ModelJudge> {
  const { VerdictEngine } = await import('../verdict/engine.js')
  const { backendOptions } = await import('../model/load-backend.js')
  const { loadConfig } = await import('../config/load.js')
  const m = loadConfig({ env: {}, args: ['--model-dir', dir] }).model
  const engine = await VerdictEngine.load({ dir, backend: m.backend, backendOptions: backendOptions(m), threads: m.threads, nice: m.nice, guardMs: m.guardMs, queueMax: m.queueMax, chunkTokens: m.chunkTokens, prefixCache: m.prefixCache })
  await engine.prepare(set.rules)
  engines.push(engine)
  return engine
}
