// `flashcheck replay FILE [--rules-dir DIR] [--against DIR] [--speed N|max] [--json]` (plus the configuration
// of `run`: --config FILE, --<key> VALUE): how many verdicts of a recording would change between the
// baseline (--against, else the recorded verdicts) and the rules of --rules-dir. Last line exactly
// `replayed N requests: S same, C changed`.
import { ConfigError } from '../config/load.js'
import { loadRuleDir } from '../rules/load.js'
import type { RuleSet } from '../rules/types.js'
import { replayRecording } from '../replay/replay.js'
import { parseConfigArgs } from './run.js'

const USAGE = 'usage: flashcheck replay FILE [--rules-dir DIR] [--against DIR] [--speed N|max] [--json] [--config FILE]\n'

export async function replay(argv: string[]): Promise<number> {
  let file: string | undefined
  let against: string | undefined
  let speed = Infinity
  let json = false
  const rest: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE)
      return 0
    } else if (a === '--against') against = argv[++i]
    else if (a === '--json') json = true
    else if (a === '--speed') {
      const v = argv[++i]
      speed = v === 'max' ? Infinity : Number(v)
      if (!(speed > 0)) return usage('--speed needs a positive number or max')
    } else if (a.startsWith('--')) {
      rest.push(a)
      if (!a.includes('=') && i + 1 < argv.length) rest.push(argv[++i]!)
    } else if (file === undefined) file = a
    else return usage(`unexpected argument ${a}`)
  }
  if (file === undefined) return usage('FILE is required')
  let cfg
  try {
    cfg = parseConfigArgs(rest)
  } catch (e) {
    if (e instanceof ConfigError) return usage(e.message)
    throw e
  }
  const load = async (dir: string): Promise<RuleSet | undefined> => {
    const res = await loadRuleDir(dir, { defaultBudgetMs: cfg.budget.defaultMs, model: true })
    if (res.ok) return res.set
    for (const e of res.errors) process.stderr.write(`${e.file}:${e.line}:${e.col}: ${e.message}\n`)
    return undefined
  }
  const set = await load(cfg.rules.dir)
  const base = against === undefined ? undefined : await load(against)
  if (!set || (against !== undefined && !base)) return 1
  let s
  try {
    s = await replayRecording({ file, config: cfg, set, against: base, speed, keepChanges: json })
  } catch (e) {
    process.stderr.write(`flashcheck replay: ${(e as Error).message}\n`)
    return 2
  }
  if (!base && s.requests === 0 && s.uncompared > 0) {
    process.stderr.write('flashcheck replay: the recording holds no responses to compare with; give --against DIR (the rules it was recorded with)\n')
  }
  const rows = [...s.byInspection].sort(([a], [b]) => a.localeCompare(b))
  if (json) {
    process.stdout.write(JSON.stringify({
      recording: { rules_rev: s.header.rules_rev, started_at: s.header.started_at },
      baseline: base ? { rules_dir: against, rules_rev: base.rev } : 'recorded verdicts',
      rules: { rules_dir: cfg.rules.dir, rules_rev: set.rev },
      inspections: Object.fromEntries(rows),
      uncompared: s.uncompared,
      skipped_lines: s.skipped,
      changed: s.changes,
    }) + '\n')
  } else {
    for (const [id, st] of rows) process.stdout.write(`${id}: ${st.verdicts} verdicts, ${st.changed} changed\n`)
    if (s.uncompared > 0) process.stdout.write(`${s.uncompared} requests without a recorded response were not compared\n`)
    if (s.skipped > 0) process.stdout.write(`${s.skipped} malformed lines skipped\n`)
  }
  process.stdout.write(`replayed ${s.requests} requests: ${s.same} same, ${s.changed} changed\n`)
  return 0
}

function usage(msg: string): number {
  process.stderr.write(`flashcheck replay: ${msg}\n${USAGE}`)
  return 2
}
