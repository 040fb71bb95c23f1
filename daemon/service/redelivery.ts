// The redelivery memory of the service: which requests were answered (Dedupe), which of those are still in
// flight, and its snapshots in state.dir so that a restart does not answer a redelivered request twice.
//
// A request's key is "open" from its arrival until the broker has acknowledged its verdict: until then the
// verdict may still be lost (a killed process's socket buffers go with it), so open keys stay out of
// snapshots and a redelivery after a restart is answered.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../log/logger.js'
import { Dedupe, readSnapshot, saveSnapshot } from './dedupe.js'

/** Snapshots go to state.dir at most this often. */
const SAVE_MS = 1000

export class RedeliveryMemory {
  private readonly dedupe: Dedupe
  private readonly open = new Set<string>()
  private file?: string
  private timer?: NodeJS.Timeout
  private dirty = false
  private saving?: Promise<void>

  constructor(windowMs: number, entries: number, private readonly log: Logger) {
    this.dedupe = new Dedupe(windowMs, entries)
  }

  /**
   * The epoch ms at which the request (key, payload checksum) was first inspected, when this is a redelivery
   * (its verdict_id carries the same millisecond); otherwise records it as open and gives -1.
   */
  seenAt(key: string, sum: number, now: number): number {
    const at = this.dedupe.seenAt(key, sum, now)
    if (at >= 0) return at
    this.dirty = true
    // Open keys only matter to snapshots; without a state file there is nothing to keep them out of.
    if (this.file !== undefined) this.open.add(key)
    return -1
  }

  /** The request's verdict is safe with the broker (or will never be sent): it may go into snapshots. */
  readonly closeKey = (key: string): void => {
    if (this.open.size > 0) this.open.delete(key)
  }

  /** Keys of requests whose verdict is not acknowledged yet (for tests and diagnostics). */
  get openKeys(): ReadonlySet<string> {
    return this.open
  }

  /** Records a request answered by an earlier process (from the audit journal). */
  remember(key: string, sum: number, at: number): void {
    this.dedupe.add(key, sum, at)
  }

  /** Loads the last snapshot of `dir` and starts saving there; '' keeps nothing across restarts. */
  async restore(dir: string): Promise<void> {
    if (dir === '') return
    this.file = join(dir, 'dedupe.bin')
    const snap = await readSnapshot(this.file)
    if (snap) {
      const n = this.dedupe.restore(snap, Date.now())
      this.log.info({ entries: n, file: this.file }, 'redelivery memory restored')
    }
    try {
      await mkdir(dir, { recursive: true, mode: 0o750 })
    } catch (e) {
      this.log.warn({ err: (e as Error).message, dir }, 'state directory unusable; redeliveries after a restart may be answered twice')
      this.file = undefined
      return
    }
    this.timer = setInterval(() => void this.save(), SAVE_MS)
    this.timer.unref()
  }

  /** Writes a snapshot when something changed since the last one; one write at a time. */
  save(): Promise<void> {
    if (!this.file || !this.dirty) return Promise.resolve()
    if (this.saving) return this.saving
    this.dirty = false
    const file = this.file
    this.saving = saveSnapshot(file, this.dedupe.snapshot(Date.now(), this.open))
      .catch((e: unknown) => { this.log.warn({ err: (e as Error).message, file }, 'saving the redelivery memory failed') })
      .finally(() => { this.saving = undefined })
    return this.saving
  }

  /** Stops the periodic saves and writes the last snapshot. */
  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.save()
  }
}
