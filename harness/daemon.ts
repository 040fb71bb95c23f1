// The real daemon in-process against a real broker, with its log lines captured for assertions.
import { Writable } from 'node:stream'
import type { Config } from '../daemon/config/schema.js'
import { createLogger } from '../daemon/log/logger.js'
import { Daemon } from '../daemon/service/daemon.js'

export interface Running {
  daemon: Daemon
  logs: Record<string, unknown>[]
  stop(): Promise<void>
}

export async function startDaemon(cfg: Config): Promise<Running> {
  const logs: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    },
  })
  const daemon = new Daemon({ config: cfg, logger: createLogger(cfg.log.level, sink) })
  const connected = new Promise<void>((resolve) => daemon.once('connected', () => resolve()))
  await daemon.start()
  await connected
  return { daemon, logs, stop: () => daemon.stop() }
}

export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), timeoutMs)
    emitter.once(event, (v: T) => { clearTimeout(timer); resolve(v) })
  })
}
