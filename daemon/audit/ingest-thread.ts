// The journal's ingest thread (ingest-worker.ts) as the journal sees it: started over the spool's shared write
// position, started again a second after it dies, moved from SCHED_IDLE to nice 10 once starved, and stopped so
// that it first takes in what was written. What it reports (rows ingested, pruned, dropped, failures) goes to
// the journal's handlers; nothing here counts or logs a failure of the database itself.
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { Logger } from '../log/logger.js'
import type { FailureReport, IngestMessage, IngestPriority, IngestWorkerData } from './ingest-worker.js'

const WORKER_URL = new URL(`./ingest-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url)
const RESTART_MS = 1000
/**
 * Rows waiting this long for an idle-priority thread mean it is starved: a successor runs at nice 10. Above a
 * locked database's cycle (busy timeout 1 s, then a retry 1 s later), which is a failure, not starvation.
 */
export const STARVED_MS = 3000
/** The wait of the oldest row is sampled this often (one mark per interval, while rows are written). */
const LAG_MARK_MS = 100

/** Where the thread's reports go. */
export interface IngestHandlers {
  ingested(rows: number, seq: number): void
  pruned(age: number, bytes: number): void
  dropped(torn: number, bad: number): void
  failed(m: Extract<IngestMessage, { kind: 'error' }>): void
  /** The thread itself failed (an uncaught exception); it exits and is started again. */
  crashed(e: Error): void
  /** Whether a thread that exited should be started again (the journal is open). */
  wanted(): boolean
}

export type IngestSettings = Omit<IngestWorkerData, 'idle' | 'handover'>

export class IngestThread {
  private worker?: Worker
  private restartTimer?: NodeJS.Timeout
  /** The running thread's handover flag (IngestWorkerData.handover). */
  private handover = new Int32Array(new SharedArrayBuffer(4))
  /** Set while the thread finishes for a successor at nice 10, which starts once it says it stopped. */
  private handingOver = false
  /** The thread runs under SCHED_IDLE until it falls behind (STARVED_MS), then at nice 10 for good. */
  private idle = true
  /** (seq of the last row written, when) every LAG_MARK_MS while rows wait: the first dates the oldest waiting row. */
  private marks: { seq: number; at: number }[] = []
  /** When the thread last reported a failure: rows held up by one are not a starved thread. */
  private lastError = 0
  private stopped = false
  /** How the running thread yields the CPU, once it said so. */
  priority?: IngestPriority

  constructor(private readonly settings: IngestSettings, private readonly on: IngestHandlers, private readonly log: Logger) {}

  start(): void {
    if (this.worker || this.stopped) return
    this.handover = new Int32Array(new SharedArrayBuffer(4))
    const w = new Worker(WORKER_URL, { workerData: { ...this.settings, idle: this.idle, handover: this.handover } satisfies IngestWorkerData })
    w.on('message', (m: IngestMessage) => this.message(m, w))
    w.on('error', (e) => this.on.crashed(e))
    w.on('exit', () => {
      if (this.worker !== w) return
      this.worker = undefined
      this.handingOver = false
      if (this.stopped || !this.on.wanted()) return
      this.restartTimer = setTimeout(() => this.start(), RESTART_MS)
      this.restartTimer.unref()
    })
    // After the listeners (a 'message' listener refs the port): the thread never holds the process open by itself.
    w.unref()
    this.worker = w
  }

  /** Failures the journal counted, for the database's meta table (read by `flashcheck doctor`). */
  report(r: FailureReport): boolean {
    if (!this.worker) return false
    this.worker.postMessage(r)
    return true
  }

  /** Someone waits for rows now in the spool (journal.settled): ingest them without waiting for the next tick. */
  now(): void {
    this.worker?.postMessage('now')
  }

  /** Rows up to `seq` are in the database: they wait no more. */
  caughtUp(seq: number): void {
    while (this.marks.length > 0 && this.marks[0].seq <= seq) this.marks.shift()
  }

  /**
   * Called after each spool write with the last seq written. Under SCHED_IDLE the thread gets only CPU time
   * nobody else wants: on cores saturated for long it would fall behind without bound. Once the oldest waiting
   * row is STARVED_MS old (and no failure explains it), the thread is asked to finish after its current step and
   * a successor at nice 10 starts as it exits (a thread cannot leave SCHED_IDLE by itself without privileges).
   * Never terminate(): a thread stopped while inside better-sqlite3 takes the whole process down with it.
   */
  watchLag(seq: number, waiting: number): void {
    if (!this.idle || this.worker === undefined) return
    const now = Date.now()
    const last = this.marks.length > 0 ? this.marks[this.marks.length - 1] : undefined
    if (last === undefined || now - last.at >= LAG_MARK_MS) this.marks.push({ seq, at: now })
    const lag = now - this.marks[0].at
    if (lag < STARVED_MS || now - this.lastError < 2 * STARVED_MS) return
    this.idle = false
    this.marks = []
    this.log.warn({ lag_ms: lag, rows_waiting: waiting, file: this.settings.file }, 'audit ingest thread starved at idle priority; it runs at nice 10 from now on')
    this.handingOver = true
    // Read by the thread every 32 rows and at each tick (every intervalMs): no message needed.
    Atomics.store(this.handover, 0, 1)
  }

  /** Ends the thread at once (the database is being moved aside); start() runs a new one. */
  abandon(): void {
    const w = this.worker
    this.worker = undefined
    void w?.terminate()
  }

  /** Lets the thread take in what is in the spool and close its database; resolves once it exited. */
  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.restartTimer)
    const w = this.worker
    this.worker = undefined
    if (!w) return
    // Held open until it has ingested and closed: the process may have nothing else left to wait for.
    w.ref()
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()))
    w.postMessage('stop')
    // A thread kept from the CPU (SCHED_IDLE on saturated cores) is asked to stop after its current step;
    // what it has not taken in stays in the spool for the next start. terminate() is the last resort only.
    const hurry = setTimeout(() => Atomics.store(this.handover, 0, 1), 5000)
    const timer = setTimeout(() => void w.terminate(), 10_000)
    await exited
    clearTimeout(hurry)
    clearTimeout(timer)
  }

  private message(m: IngestMessage, from: Worker): void {
    switch (m.kind) {
      case 'ingested':
        this.on.ingested(m.rows, m.seq)
        return
      case 'pruned':
        this.on.pruned(m.age, m.bytes)
        return
      case 'dropped':
        this.on.dropped(m.torn, m.bad)
        return
      case 'error':
        // Rows held up by a failure are not a starved thread: the wait is measured again from here.
        this.marks = []
        this.lastError = Date.now()
        this.on.failed(m)
        return
      case 'priority':
        this.priority = m.priority
        if (m.priority === 'none') this.log.warn({ file: this.settings.file }, 'audit ingest thread runs at the daemon\'s priority (lowering it was refused)')
        else this.log.debug({ priority: m.priority }, 'audit ingest thread started')
        return
      case 'stopped':
        // Its database and spool are closed: the successor starts now, not after the thread's teardown (which
        // a thread kept from the CPU takes long to get through).
        if (this.handingOver && this.worker === from && !this.stopped) {
          this.handingOver = false
          this.worker = undefined
          this.start()
        }
        return
    }
  }
}
