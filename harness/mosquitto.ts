// Starts a real mosquitto on a free loopback port for a test file or a benchmark, and can stop and restart it
// on the same port to exercise reconnects. The broker is the system's `mosquitto` binary (the test command installs it).
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1')
      sock.once('connect', () => { sock.destroy(); resolve(true) })
      sock.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > end) throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export interface MosquittoOptions {
  port?: number
  /** Keep sessions and queued messages on disk (saved on SIGTERM and after every change). */
  persistence?: boolean
  /** Listener settings after `listener PORT 127.0.0.1` (e.g. cafile/certfile/keyfile/require_certificate). */
  listener?: string[]
  /** Replaces `allow_anonymous true` (e.g. password_file, acl_file, allow_anonymous false). */
  auth?: string[]
  /** Further lines at the end of the configuration. */
  extra?: string[]
}

export class Mosquitto {
  private proc?: ChildProcess
  readonly dir = mkdtempSync(join(tmpdir(), 'flashcheck-mosq-'))
  output = ''

  private constructor(readonly port: number, private readonly opts: MosquittoOptions) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`
  }

  get pid(): number | undefined {
    return this.proc?.pid
  }

  static async start(portOrOpts?: number | MosquittoOptions): Promise<Mosquitto> {
    const opts = typeof portOrOpts === 'number' ? { port: portOrOpts } : portOrOpts ?? {}
    const m = new Mosquitto(opts.port ?? (await freePort()), opts)
    await m.startProcess()
    return m
  }

  async startProcess(): Promise<void> {
    const conf = join(this.dir, 'mosquitto.conf')
    const o = this.opts
    // mosquitto started as root drops to its own user, which must be able to write its persistence file here.
    if (o.persistence) chmodSync(this.dir, 0o777)
    writeFileSync(conf, [
      `listener ${this.port} 127.0.0.1`,
      ...(o.listener ?? []),
      ...(o.auth ?? ['allow_anonymous true']),
      ...(o.persistence
        ? ['persistence true', `persistence_location ${this.dir}/`, 'autosave_on_changes true', 'autosave_interval 1']
        : ['persistence false']),
      'set_tcp_nodelay true',
      'max_queued_messages 100000',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      ...(o.extra ?? []),
      '',
    ].join('\n'))
    const proc = spawn(mosquittoBinary(), ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    proc.stdout!.on('data', (d) => { this.output += String(d) })
    proc.stderr!.on('data', (d) => { this.output += String(d) })
    this.proc = proc
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`mosquitto exited with ${code}: ${this.output}`))))
    await Promise.race([waitForPort(this.port, 10_000), exited])
  }

  /** SIGTERM: mosquitto saves its persistence file and closes connections; SIGKILL: nothing is saved. */
  async stopProcess(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const p = this.proc
    if (!p || p.exitCode !== null) return
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve())
      p.kill(signal)
    })
    this.proc = undefined
  }

  async stop(): Promise<void> {
    await this.stopProcess()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Debian installs the broker in /usr/sbin, which a non-login PATH may lack. */
function mosquittoBinary(): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin'])) {
    if (dir && existsSync(join(dir, 'mosquitto'))) return join(dir, 'mosquitto')
  }
  return 'mosquitto'
}
