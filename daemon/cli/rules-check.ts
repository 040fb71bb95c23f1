// `flashcheck rules check DIR`: validates a rules directory the way the daemon loads it.
import { loadRuleDir } from '../rules/load.js'

export interface CheckIo {
  out: (s: string) => void
  err: (s: string) => void
}

const stdio: CheckIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }

/** argv: the arguments after `rules check`. Returns the exit code: 0 valid, 1 invalid, 2 usage. */
export async function rulesCheck(argv: string[], io: CheckIo = stdio): Promise<number> {
  let budget = 50
  const dirs: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '-h' || a === '--help') {
      io.out('usage: flashcheck rules check [--default-budget-ms N] DIR\n  Validates every *.yaml/*.yml rule file in DIR; prints each error as file:line:col: message.\n')
      return 0
    }
    if (a === '--default-budget-ms') {
      budget = Number(argv[++i])
      if (!(budget > 0)) {
        io.err('rules check: --default-budget-ms needs a positive number\n')
        return 2
      }
    } else if (a.startsWith('-')) {
      io.err(`rules check: unknown option ${a}\n`)
      return 2
    } else dirs.push(a)
  }
  if (dirs.length !== 1) {
    io.err('usage: flashcheck rules check [--default-budget-ms N] DIR\n')
    return 2
  }
  const res = await loadRuleDir(dirs[0]!, { defaultBudgetMs: budget })
  if (!res.ok) {
    for (const e of res.errors) io.out(`${e.file}:${e.line}:${e.col}: ${e.message}\n`)
    io.err(`${res.errors.length} error${res.errors.length === 1 ? '' : 's'}\n`)
    return 1
  }
  const n = res.set.rules.length
  if (n === 0) io.err(`warning: no rule files (*.yaml, *.yml) in ${dirs[0]}\n`)
  io.out(`${dirs[0]}: ${n} rule${n === 1 ? '' : 's'} valid (rev ${res.set.rev})\n`)
  return 0
}
