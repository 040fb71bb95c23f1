// `flashcheck run`: the daemon in the foreground (systemd runs it this way). Exit codes: 0 after a clean
// stop on SIGTERM/SIGINT, 1 when the rules are invalid at start, 2 for configuration errors.
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, redactedConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { createLogger } from '../log/logger.js'
import { Daemon, RulesInvalidError } from '../service/daemon.js'
import { SystemdService } from '../systemd/service.js'

/** Splits `--config FILE` from the key flags, then builds the config; throws ConfigError. */
export function parseConfigArgs(argv: string[]): Config {
  const args: string[] = []
  let file: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--config') {
      file = argv[++i]
      if (file === undefined) throw new ConfigError('config error: --config needs a FILE')
    } else if (a.startsWith('--config=')) {
      file = a.slice('--config='.length)
    } else {
      args.push(a)
    }
  }
  return loadConfig({ file, defaultFile: DEFAULT_CONFIG_FILE, args })
}

/** parseConfigArgs, printing one line and returning null on a configuration error. */
export function configFromArgs(argv: string[]): Config | null {
  try {
    return parseConfigArgs(argv)
  } catch (e) {
    if (e instanceof ConfigError) return fail(e.message)
    throw e
  }
}

/**
 * A daemon that parses input from the network has no business running as root: a bug would own the gateway.
 * The systemd unit runs it as its own user; root must be asked for explicitly. The embedded broker listens
 * on 127.0.0.1 only: a local demo (containers run as root), reachable by nothing outside the machine.
 */
export function rootRefusal(cfg: Config, uid: number | undefined): string | undefined {
  if (uid !== 0 || cfg.security.allowRoot || cfg.mqtt.url === 'embedded') return undefined
  return 'config error: refusing to run as root; run as an unprivileged user (the systemd unit does), or set security.allowRoot (--security-allow-root true, FLASHCHECK_SECURITY_ALLOW_ROOT=true) to accept the risk'
}

function fail(msg: string): null {
  process.stderr.write(`flashcheck: ${msg}\n`)
  return null
}

export async function printConfig(argv: string[]): Promise<number> {
  const cfg = configFromArgs(argv)
  if (!cfg) return 2
  process.stdout.write(JSON.stringify(redactedConfig(cfg), null, 2) + '\n')
  return 0
}

export async function run(argv: string[]): Promise<number> {
  const cfg = configFromArgs(argv)
  if (!cfg) return 2
  const refusal = rootRefusal(cfg, process.getuid?.())
  if (refusal) return fail(refusal) ?? 2
  const log = createLogger(cfg.log.level)
  log.info({ config: redactedConfig(cfg) }, 'starting flashcheck')
  let daemon: Daemon
  let systemd: SystemdService | undefined
  try {
    daemon = new Daemon({ config: cfg, logger: log, handleSignals: true })
    // Attached before start() so that the first 'connected' is not missed; a no-op outside systemd.
    systemd = new SystemdService(daemon, { logger: log })
    if (systemd.notifier.enabled) log.info({ watchdog_ms: systemd.watchdogMs ?? null }, 'systemd notification socket found')
    await daemon.start()
    systemd.markStarted()
  } catch (e) {
    systemd?.stop()
    if (e instanceof RulesInvalidError) {
      for (const err of e.errors) process.stderr.write(`${err.file}:${err.line}:${err.col}: ${err.message}\n`)
      log.fatal({ errors: e.errors.length }, 'rules invalid; not starting')
      log.flush()
      return 1
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`flashcheck: ${e.message}\n`)
      return 2
    }
    const err = e as NodeJS.ErrnoException
    log.fatal({ err }, 'start failed')
    log.flush()
    process.stderr.write(`flashcheck: start failed: ${err.message}\n`)
    return 1
  }
  return new Promise<number>((resolve) => {
    const shutdown = (sig: string) => {
      log.info({ signal: sig }, 'stopping')
      systemd?.stop()
      daemon.stop().then(() => { log.flush(); resolve(0) }, (err: Error) => { log.error({ err }, 'stop failed'); resolve(1) })
    }
    process.once('SIGTERM', () => shutdown('SIGTERM'))
    process.once('SIGINT', () => shutdown('SIGINT'))
  })
}
