// The ingest worker: a thread of its own that moves the spool into audit.db every few milliseconds (ingest.ts)
// and runs retention, so that neither SQLite's inserts, commits and checkpoints nor a large DELETE ever run on
// the daemon's event loop. It tells the journal (journal.ts) how far it got, and what failed.
import { setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import { loadAddon } from '../model/addon.js'
import { isCorruption, openWritable } from './db.js'
import { Ingester } from './ingest.js'
import { prune } from './retention.js'

export interface IngestWorkerData {
  file: string
  spoolDir: string
  sync: 'normal' | 'full'
  retentionDays: number
  maxBytes: number
  intervalMs: number
  pruneMs: number
  /** The spool writer's [segment, bytes] (SpoolWriter.live). */
  live: Int32Array
  /** Run under SCHED_IDLE (else at a nice increment): the journal asks for it until the thread falls behind. */
  idle: boolean
  /** Set to 1 by the journal: stop after the current step, without draining, for a successor to take over. */
  handover: Int32Array
}

/** How the thread yields the CPU: SCHED_IDLE, a nice increment, or not at all (not permitted). */
export type IngestPriority = 'idle' | 'nice' | 'none'

export type IngestMessage =
  | { kind: 'ingested'; rows: number; seq: number }
  | { kind: 'pruned'; age: number; bytes: number }
  | { kind: 'dropped'; torn: number; bad: number }
  | { kind: 'error'; message: string; code?: string; corrupt: boolean; during: 'ingest' | 'retention' | 'open' }
  | { kind: 'priority'; priority: IngestPriority }
  | { kind: 'stopped' }

/** From the journal: failures it counted since the last report, and the last one's text, for the meta table. */
export interface FailureReport {
  add: number
  last: string
}

const RETRY_MS = 1000
/** Nice increment of this thread alone (Linux: setpriority on the calling thread), when SCHED_IDLE is not asked for or not available. */
const NICE = 10

const d = workerData as IngestWorkerData
const port = parentPort!
const post = (m: IngestMessage) => port.postMessage(m)
const fail = (e: unknown, during: 'ingest' | 'retention' | 'open') =>
  post({ kind: 'error', message: (e as Error).message, code: (e as { code?: string }).code, corrupt: isCorruption(e), during })

/**
 * The event loop, the broker and the decoder go first. Under SCHED_IDLE a waking thread of theirs preempts this
 * one at once; at a nice increment it waits for the scheduler's wakeup granularity, which shows in the verdicts'
 * p99 (bench/RESULTS.md, audit journal).
 */
function lowerPriority(idle: boolean): IngestPriority {
  if (idle) {
    try {
      if (loadAddon<{ schedIdle?: () => number }>().schedIdle?.() === 0) return 'idle'
    } catch {
      // no addon here: a nice increment instead
    }
  }
  try {
    setPriority(NICE)
    return 'nice'
  } catch {
    return 'none' // not permitted or not supported: the ingest runs at the daemon's priority
  }
}
post({ kind: 'priority', priority: lowerPriority(d.idle) })

let db: ReturnType<typeof openWritable> | undefined
let ing: Ingester | undefined
try {
  db = openWritable(d.file, d.sync)
  ing = new Ingester(db, d.spoolDir, handingOver)
} catch (e) {
  fail(e, 'open')
}

let timer: NodeJS.Timeout | undefined
/** Failures the journal counted and the database does not show yet. */
let unrecorded = 0
let lastError = ''

/** Adds the journal's failures to the meta table (`flashcheck doctor` reads them); kept for a later try while it fails. */
function recordErrors(): void {
  if (unrecorded === 0 || !db) return
  try {
    const up = db.prepare('INSERT INTO meta(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v')
    db.transaction(() => {
      const before = Number((db!.prepare("SELECT v FROM meta WHERE k = 'write_errors'").get() as { v: string } | undefined)?.v ?? 0)
      up.run('write_errors', String(before + unrecorded))
      up.run('last_error', lastError)
    })()
    unrecorded = 0
  } catch {
    // the database still refuses writes: the next tick tries again
  }
}
// The first retention a minute after start: a restarted daemon serves first.
let nextPrune = Date.now() + d.pruneMs
let stopped = false
/** Whether the last ingest succeeded (a failed one waits RETRY_MS, a nudge does not cut that short). */
let lastOk = true

/** Ingests what there is; false after a failure (the caller waits longer before the next try). */
function ingest(): boolean {
  let rows = 0
  let seq = -1
  let ok = true
  try {
    ing!.drain((s) => {
      if (s.torn > 0 || s.bad > 0) post({ kind: 'dropped', torn: s.torn, bad: s.bad })
      rows += s.rows
      if (s.seq >= 0) seq = s.seq
    }, d.live)
  } catch (e) {
    fail(e, 'ingest')
    if (isCorruption(e)) stop()
    ok = false
  }
  if (seq >= 0) post({ kind: 'ingested', rows, seq })
  return ok
}

/** The journal wants a successor: nothing more is taken in here (the flag is read every 32 rows and at each tick, never during a SQLite call). */
function handingOver(): boolean {
  return Atomics.load(d.handover, 0) === 1
}

function tick(): void {
  timer = undefined
  if (stopped) return
  if (handingOver()) return stop()
  const ok = ingest()
  lastOk = ok
  if (stopped) return
  if (handingOver()) return stop()
  if (ok) recordErrors()
  if (ok && Date.now() >= nextPrune) {
    nextPrune = Date.now() + d.pruneMs
    try {
      const p = prune(db!, d.retentionDays, d.maxBytes)
      if (p.age + p.bytes > 0) post({ kind: 'pruned', ...p })
    } catch (e) {
      fail(e, 'retention')
    }
  }
  timer = setTimeout(tick, ok ? d.intervalMs : RETRY_MS)
}

function stop(): void {
  stopped = true
  clearTimeout(timer)
  try { ing?.close() } catch { /* nothing left to read */ }
  try { db?.close() } catch { /* nothing left to save */ }
  db = undefined
  post({ kind: 'stopped' })
  port.close()
}

port.on('message', (m: unknown) => {
  if (stopped) return
  if (typeof m === 'object' && m !== null && 'add' in m) {
    const e = m as FailureReport
    unrecorded += e.add
    lastError = e.last
    return
  }
  if (m === 'now') {
    // Between ticks (timer set): the next one at once. During a retry wait, the retry's own time stands.
    if (timer !== undefined && lastOk) {
      clearTimeout(timer)
      tick()
    }
    return
  }
  if (m !== 'stop') return
  // What the journal wrote before asking is in the spool: take it in before closing.
  if (db && ingest()) recordErrors()
  stop()
})

if (db) tick()
else stop()
