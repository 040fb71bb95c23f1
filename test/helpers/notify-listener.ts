// An independent sd_notify receiver: a Python AF_UNIX datagram socket (python3 is there wherever node-gyp
// built the addon), bound to a filesystem path or an abstract name, printing each datagram with the
// CLOCK_MONOTONIC time it arrived. What systemd's manager does with NOTIFY_SOCKET, minus the manager.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const SCRIPT = `
import json, os, socket, sys, time
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + addr[1:] if addr.startswith("@") else addr)
print("listening", flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({"t": time.monotonic(), "fields": data.decode()}), flush=True)
`

export interface Datagram {
  /** CLOCK_MONOTONIC seconds at arrival. */
  t: number
  /** The raw datagram. */
  raw: string
  /** KEY=VALUE lines, parsed. */
  fields: Record<string, string>
}

export class NotifyListener {
  readonly messages: Datagram[] = []
  private waiters: (() => void)[] = []
  private dir?: string

  private constructor(readonly address: string, private readonly proc: ChildProcess) {}

  /** abstract: bind "@flashcheck-test-<random>" instead of a socket file. */
  static async start(opts: { abstract?: boolean } = {}): Promise<NotifyListener> {
    let dir: string | undefined
    let address: string
    if (opts.abstract) {
      address = `@flashcheck-test-${randomBytes(6).toString('hex')}`
    } else {
      dir = mkdtempSync(join(tmpdir(), 'flashcheck-notify-'))
      address = join(dir, 'notify.sock')
    }
    const proc = spawn('python3', ['-c', SCRIPT, address], { stdio: ['ignore', 'pipe', 'pipe'] })
    const l = new NotifyListener(address, proc)
    l.dir = dir
    let buf = ''
    let err = ''
    proc.stderr!.on('data', (d) => { err += String(d) })
    await new Promise<void>((resolve, reject) => {
      proc.once('exit', (code) => reject(new Error(`notify listener exited ${code}: ${err}`)))
      proc.stdout!.on('data', (d) => {
        buf += String(d)
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 1)
          if (line === 'listening') { resolve(); continue }
          const m = JSON.parse(line) as { t: number; fields: string }
          const fields: Record<string, string> = {}
          for (const kv of m.fields.split('\n')) {
            const i = kv.indexOf('=')
            if (i > 0) fields[kv.slice(0, i)] = kv.slice(i + 1)
          }
          l.messages.push({ t: m.t, raw: m.fields, fields })
          for (const w of l.waiters.splice(0)) w()
        }
      })
    })
    return l
  }

  /** Resolves with the first message (from index `from` on) that has `key`, waiting up to timeoutMs. */
  async waitFor(key: string, opts: { from?: number; timeoutMs?: number; value?: string } = {}): Promise<Datagram> {
    const end = Date.now() + (opts.timeoutMs ?? 15_000)
    for (;;) {
      const hit = this.messages.slice(opts.from ?? 0).find((m) => key in m.fields && (opts.value === undefined || m.fields[key] === opts.value))
      if (hit) return hit
      const left = end - Date.now()
      if (left <= 0) throw new Error(`no ${key} notification within ${opts.timeoutMs ?? 15_000} ms; got:\n${this.messages.map((m) => JSON.stringify(m.raw)).join('\n')}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) {
      await new Promise<void>((resolve) => { this.proc.once('exit', () => resolve()); this.proc.kill('SIGTERM') })
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true })
  }
}
