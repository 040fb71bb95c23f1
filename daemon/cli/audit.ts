// `flashcheck audit show|export|stats`: reads the verdict journal (<state.dir>/audit.db, or --db FILE, e.g. a
// copy taken from a gateway). Works while the daemon runs (WAL readers do not block the writer).
import { createWriteStream } from 'node:fs'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { AUDIT_FILE, openReadOnly, type Db } from '../audit/db.js'
import { csvHeader, csvLine, exportRows, parseTime, recordOf, show, stats, type Filter } from '../audit/query.js'
import { ConfigError } from '../config/load.js'
import { loadRuleDir } from '../rules/load.js'
import { passLabel } from '../rules/pass-label.js'
import { parseConfigArgs } from './run.js'

const USAGE = `usage:
  flashcheck audit show ID|TRACE [--db FILE]
  flashcheck audit export [--since T] [--until T] [--inspection ID] [--verdict V] [--format jsonl|csv] [--out FILE] [--db FILE]
  flashcheck audit stats [--since T] [--rules-dir DIR] [--db FILE]
  T is ISO-8601 (2026-03-03T08:00:00Z) or relative to now (-24h, -30m, -7d). Without --db the database is
  <state.dir>/audit.db of the configuration (--config FILE, or /etc/flashcheck/config.json). stats counts a
  verdict as a pass when it is its rule's least severe label, read from --rules-dir or the configuration's
  rules.dir (PASS for inspections not found there).
`

class UsageError extends Error {}

interface Args {
  positional: string[]
  flags: Map<string, string>
}

function parse(argv: string[], allowed: string[]): Args {
  const positional: string[] = []
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) {
      positional.push(a)
      continue
    }
    const eq = a.indexOf('=')
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2)
    if (!allowed.includes(name) && name !== 'db' && name !== 'config') throw new UsageError(`unknown option --${name}`)
    const value = eq > 0 ? a.slice(eq + 1) : argv[++i]
    if (value === undefined) throw new UsageError(`--${name} needs a value`)
    flags.set(name, value)
  }
  return { positional, flags }
}

function dbPath(a: Args): string {
  const explicit = a.flags.get('db')
  if (explicit !== undefined) return explicit
  const cfg = parseConfigArgs(a.flags.has('config') ? ['--config', a.flags.get('config')!] : [])
  if (cfg.state.dir === '') throw new UsageError('state.dir is empty in the configuration: name the database with --db FILE')
  return join(cfg.state.dir, AUDIT_FILE)
}

function filterOf(a: Args): Filter {
  const f: Filter = {}
  const since = a.flags.get('since')
  const until = a.flags.get('until')
  try {
    if (since !== undefined) f.since = parseTime(since)
    if (until !== undefined) f.until = parseTime(until)
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  if (a.flags.has('inspection')) f.inspection = a.flags.get('inspection')
  if (a.flags.has('verdict')) f.verdict = a.flags.get('verdict')
  return f
}

/**
 * Each inspection's passing label (its rule's least severe verdict), from --rules-dir or, when the configuration
 * loads, its rules.dir; PASS for inspections without a rule there. A --rules-dir that does not load is an error.
 */
async function passLabels(a: Args): Promise<(inspection: string | null) => string> {
  let dir = a.flags.get('rules-dir')
  const explicit = dir !== undefined
  let budget = 50
  if (!explicit) {
    try {
      const cfg = parseConfigArgs(a.flags.has('config') ? ['--config', a.flags.get('config')!] : [])
      dir = cfg.rules.dir
      budget = cfg.budget.defaultMs
    } catch {
      return () => passLabel(undefined)
    }
  }
  const res = await loadRuleDir(dir!, { defaultBudgetMs: budget, model: true })
  if (!res.ok) {
    if (!explicit) return () => passLabel(undefined)
    const e = res.errors[0]!
    throw new UsageError(`--rules-dir: ${e.file}:${e.line}:${e.col}: ${e.message}`)
  }
  const labels = new Map(res.set.rules.map((r) => [r.id, passLabel(r.verdicts)]))
  return (inspection) => (inspection !== null ? labels.get(inspection) : undefined) ?? passLabel(undefined)
}

/** Writes with backpressure, so an export of a year of records stays in constant memory. */
function writer(out: Writable): (s: string) => Promise<void> | undefined {
  return (s) => (out.write(s) ? undefined : new Promise<void>((resolve, reject) => {
    out.once('drain', resolve)
    out.once('error', reject)
  }))
}

async function runExport(db: Db, a: Args, f: Filter, format: 'jsonl' | 'csv'): Promise<number> {
  const file = a.flags.get('out')
  const out: Writable = file ? createWriteStream(file, { mode: 0o640 }) : process.stdout
  const failed = new Promise<never>((_, reject) => out.once('error', reject))
  failed.catch(() => {})
  const write = writer(out)
  let n = 0
  const work = (async () => {
    if (format === 'csv') await write(csvHeader())
    for (const row of exportRows(db, f)) {
      const p = write(format === 'csv' ? csvLine(row) : JSON.stringify(recordOf(row)) + '\n')
      n++
      if (p) await p
    }
    if (file) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())))
  })()
  await Promise.race([work, failed])
  if (file) process.stderr.write(`audit export: ${n} record(s) to ${file}\n`)
  return 0
}

export async function audit(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === undefined || sub === '-h' || sub === '--help') {
    process.stdout.write(USAGE)
    return sub === undefined ? 2 : 0
  }
  let db: Db | undefined
  try {
    switch (sub) {
      case 'show': {
        const a = parse(rest, [])
        if (a.positional.length !== 1) throw new UsageError('audit show needs one ID or TRACE')
        db = openReadOnly(dbPath(a))
        const rows = show(db, a.positional[0])
        if (rows.length === 0) {
          process.stderr.write(`audit show: no record with verdict_id or trace ${JSON.stringify(a.positional[0])}\n`)
          return 1
        }
        process.stdout.write(JSON.stringify(rows.map(recordOf), null, 2) + '\n')
        return 0
      }
      case 'export': {
        const a = parse(rest, ['since', 'until', 'inspection', 'verdict', 'format', 'out'])
        if (a.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(a.positional[0])}`)
        const format = a.flags.get('format') ?? 'jsonl'
        if (format !== 'jsonl' && format !== 'csv') throw new UsageError(`--format must be jsonl or csv, got ${JSON.stringify(format)}`)
        const f = filterOf(a)
        db = openReadOnly(dbPath(a))
        return await runExport(db, a, f, format)
      }
      case 'stats': {
        const a = parse(rest, ['since', 'rules-dir'])
        if (a.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(a.positional[0])}`)
        const f = filterOf(a)
        const pass = await passLabels(a)
        db = openReadOnly(dbPath(a))
        process.stdout.write(JSON.stringify({ since: f.since !== undefined ? new Date(f.since).toISOString() : null, inspections: stats(db, f, pass) }, null, 2) + '\n')
        return 0
      }
      default:
        process.stderr.write(`flashcheck audit: unknown subcommand ${JSON.stringify(sub)}\n${USAGE}`)
        return 2
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`flashcheck audit ${sub}: ${e.message}\n${USAGE}`)
      return 2
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`)
      return 2
    }
    // A missing or damaged database, or one that breaks while being read.
    process.stderr.write(`flashcheck audit ${sub}: ${(e as Error).message}\n`)
    return 1
  } finally {
    db?.close()
  }
}
