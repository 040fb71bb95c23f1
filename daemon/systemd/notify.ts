// sd_notify(3) for Node: the datagram goes out through the project's native addon (Node has no AF_UNIX
// datagram sockets), without libsystemd. Without $NOTIFY_SOCKET every call is a no-op, so `flashcheck run`
// behaves the same under a shell, a container or systemd's Type=simple.
import { ADDON_PATH, loadAddon } from '../model/addon.js'

type Send = (socket: string, state: string) => number

let nativeSend: Send | undefined
function addonSend(): Send {
  if (!nativeSend) {
    const addon = loadAddon<{ sdNotify?: Send }>()
    if (typeof addon.sdNotify !== 'function') throw new Error(`${ADDON_PATH} has no sdNotify: rebuild the addon (npm ci)`)
    nativeSend = addon.sdNotify.bind(addon)
  }
  return nativeSend
}

/** CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC against (libuv's hrtime). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n
}

export type NotifyFields = Record<string, string | number | bigint>

/** Formats fields as the protocol's newline-separated KEY=VALUE lines; values cannot contain newlines. */
export function formatState(fields: NotifyFields): string {
  return Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/[\r\n]+/g, ' ')}`).join('\n') + '\n'
}

export class Notifier {
  readonly socket: string | undefined
  /** errno of the last failed send (0 after a good one), for logs. */
  lastError = 0

  constructor(env: NodeJS.ProcessEnv = process.env, private readonly send?: Send) {
    const s = env.NOTIFY_SOCKET
    this.socket = s ? s : undefined
  }

  get enabled(): boolean {
    return this.socket !== undefined
  }

  /** Sends one notification; false when disabled or the send failed (see lastError). */
  notify(fields: NotifyFields): boolean {
    if (!this.socket) return false
    const rc = (this.send ?? addonSend())(this.socket, formatState(fields))
    this.lastError = rc
    return rc === 0
  }
}

/** Half of $WATCHDOG_USEC in ms when the watchdog is meant for this process; undefined otherwise. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC)
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return undefined
  // WATCHDOG_PID names the process the watchdog is for; a child that inherited the variables must not ping.
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined
  return Math.max(1, Math.floor(usec / 2 / 1000))
}
