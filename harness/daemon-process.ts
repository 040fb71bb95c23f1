// The daemon as its own process, the way operators and systemd run it (`flashcheck run` from dist/), started
// against a broker and considered up once it has published its retained `online` status.
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { PACKAGE_ROOT } from '../daemon/paths.js'

export const CLI = join(PACKAGE_ROOT, 'dist', 'daemon', 'cli', 'main.js')

export interface DaemonProcessOptions {
  /** Broker URL. */
  url: string
  /** Further `flashcheck run` arguments (rules dir, model, metrics port, …). */
  args?: string[]
  /** Node options for the daemon process (e.g. --cpu-prof). */
  nodeArgs?: string[]
  /** The node id; its status topic says when the daemon is up. */
  nodeId?: string
}

/** Starts `flashcheck run` and resolves once it is connected and online; rejects if it exits first. */
export async function spawnDaemon(o: DaemonProcessOptions): Promise<ChildProcess> {
  const node = o.nodeId ?? 'bench'
  const watcher = await mqtt.connectAsync(o.url, { protocolVersion: 5, reconnectPeriod: 0 })
  await watcher.subscribeAsync(`flashcheck/${node}/status`)
  const online = new Promise<void>((resolve) => watcher.on('message', (_t, p) => { if (String(p) === 'online') resolve() }))
  const args = [
    ...(o.nodeArgs ?? []), CLI, 'run', '--mqtt-url', o.url, '--rules-watch', 'false', '--log-level', 'warn', '--node-id', node, '--state-dir', '',
    // Benchmarks and tests run wherever the developer is, containers included; the daemon refuses root otherwise.
    ...(process.getuid?.() === 0 ? ['--security-allow-root', 'true'] : []),
    ...(o.args ?? []),
  ]
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] })
  try {
    await Promise.race([online, new Promise((_, reject) => p.once('exit', (c) => reject(new Error(`daemon exited ${c}`))))])
  } finally {
    await watcher.endAsync()
  }
  return p
}

/** Stops a process with SIGTERM and waits for it to exit. */
export async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return
  const exited = new Promise((r) => p.once('exit', r))
  p.kill('SIGTERM')
  await exited
}
