// `flashcheck record --out FILE [--duration S] [--topics FILTER...]` plus the configuration of `run`
// (--config FILE, --mqtt-url URL, --rules-dir DIR, …): records the request and signal traffic of the
// configured rules (or the given filters) until the duration is over or Ctrl-C, then prints the count.
import { ConfigError } from '../config/load.js'
import { clientOptions } from '../mqtt/options.js'
import { loadRuleDir } from '../rules/load.js'
import { desiredFilters } from '../service/subscriptions.js'
import { Recorder } from '../record/recorder.js'
import { parseConfigArgs } from './run.js'

const USAGE = 'usage: flashcheck record --out FILE [--duration S] [--topics FILTER...] [--config FILE] [--<key> VALUE ...]\n'

export async function record(argv: string[]): Promise<number> {
  let out: string | undefined
  let duration: number | undefined
  let topics: string[] | undefined
  const rest: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE)
      return 0
    } else if (a === '--out') out = argv[++i]
    else if (a === '--duration') {
      duration = Number(argv[++i])
      if (!(duration > 0)) return usage('--duration needs a positive number of seconds')
    } else if (a === '--topics') {
      topics = []
      while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) topics.push(argv[++i]!)
      if (topics.length === 0) return usage('--topics needs at least one filter')
    } else rest.push(a)
  }
  if (out === undefined) return usage('--out FILE is required')
  let cfg
  try {
    cfg = parseConfigArgs(rest)
  } catch (e) {
    if (e instanceof ConfigError) return usage(e.message)
    throw e
  }
  if (cfg.mqtt.url === 'embedded') return usage('record needs a broker URL (--mqtt-url); the embedded broker lives inside a running daemon')
  const rules = await loadRuleDir(cfg.rules.dir, { defaultBudgetMs: cfg.budget.defaultMs, model: true })
  if (!rules.ok && topics === undefined) {
    for (const e of rules.errors) process.stderr.write(`${e.file}:${e.line}:${e.col}: ${e.message}\n`)
    process.stderr.write('flashcheck record: rules invalid; fix them or give --topics\n')
    return 1
  }
  const filters = topics ?? desiredFilters(rules.ok ? rules.set : undefined, cfg.mqtt.requestFilter)
  const client = clientOptions(cfg, cfg.mqtt.protocolVersion)
  // Its own identity and no session: a recorder must never take the daemon's session or queued requests.
  client.clientId = `${cfg.mqtt.clientId}-record-${process.pid}`
  client.clean = true
  delete client.will
  if (client.properties) client.properties = { ...client.properties, sessionExpiryInterval: 0 }
  client.reconnectPeriod = 1000
  const rec = new Recorder({ url: cfg.mqtt.url, client, filters, out, rulesRev: rules.ok ? rules.set.rev : null, rulesDir: cfg.rules.dir, node: cfg.node.id })
  try {
    await rec.start()
  } catch (e) {
    process.stderr.write(`flashcheck record: ${(e as Error).message}\n`)
    await rec.stop()
    return 1
  }
  process.stderr.write(`recording ${filters.join(' ')} to ${out}${duration ? ` for ${duration} s` : ''} (Ctrl-C ends)\n`)
  await new Promise<void>((resolve) => {
    const timer = duration ? setTimeout(resolve, duration * 1000) : undefined
    const end = () => {
      clearTimeout(timer)
      resolve()
    }
    process.once('SIGINT', end)
    process.once('SIGTERM', end)
  })
  await rec.stop()
  process.stderr.write(`recorded ${rec.messages} messages to ${out}${rec.dropped ? `; ${rec.dropped} dropped (the file could not keep up)` : ''}\n`)
  return 0
}

function usage(msg: string): number {
  process.stderr.write(`flashcheck record: ${msg}\n${USAGE}`)
  return 2
}
