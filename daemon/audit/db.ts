// The audit database: schema, opening (WAL) and what to do with a file that is not a database any more.
// Shared by the daemon's journal (read-write) and `flashcheck audit` (read-only, also while the daemon runs).
import { existsSync, renameSync } from 'node:fs'
import Database from 'better-sqlite3'

export type Db = Database.Database

export const AUDIT_FILE = 'audit.db'

// One row per verdict. `seq` is the insertion order (and the order retention removes rows in); verdict_id is a
// UUIDv7, so its text order is time order too and time ranges use its index. `response` is the published JSON
// as it went out: a redelivered request gets it again byte for byte.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS verdicts (
  seq INTEGER PRIMARY KEY,
  verdict_id TEXT NOT NULL UNIQUE,
  ts TEXT NOT NULL,
  node TEXT NOT NULL,
  inspection TEXT,
  trace TEXT,
  verdict TEXT NOT NULL,
  error_code TEXT,
  checks TEXT NOT NULL,
  inputs TEXT NOT NULL,
  model TEXT,
  rules_rev TEXT,
  model_id TEXT,
  latency_ms REAL NOT NULL,
  deadline_missed INTEGER NOT NULL,
  fallback INTEGER NOT NULL,
  request_topic TEXT NOT NULL,
  response_topic TEXT NOT NULL,
  correlation TEXT,
  dedupe_key TEXT,
  payload_sum INTEGER,
  response TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_trace ON verdicts(trace) WHERE trace IS NOT NULL;
CREATE INDEX IF NOT EXISTS verdicts_dedupe ON verdicts(dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY,
  verdict_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  payload TEXT NOT NULL,
  correlation_data BLOB,
  qos INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_verdict ON outbox(verdict_id);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
`

/** Opens (creating) the daemon's read-write database in WAL mode. Throws what SQLite says. */
export function openWritable(file: string, sync: 'normal' | 'full'): Db {
  const db = new Database(file)
  try {
    db.pragma('journal_mode = WAL')
    // normal: a commit reaches the OS (survives a killed process); full: fsync per batch (survives power loss).
    db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`)
    db.pragma('busy_timeout = 1000')
    db.exec(SCHEMA)
    db.prepare("INSERT OR IGNORE INTO meta(k, v) VALUES ('schema', '1')").run()
    return db
  } catch (e) {
    db.close()
    throw e
  }
}

/** Opens an existing database for reading; throws a clear Error when it is missing or not an audit database. */
export function openReadOnly(file: string): Db {
  if (!existsSync(file)) throw new Error(`${file}: no such audit database`)
  let db: Db
  try {
    db = new Database(file, { readonly: true, fileMustExist: true })
  } catch (e) {
    throw new Error(`${file}: cannot open the audit database: ${(e as Error).message}`)
  }
  try {
    db.pragma('busy_timeout = 2000')
    const t = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'verdicts'").get()
    if (!t) throw new Error('no verdicts table')
  } catch (e) {
    db.close()
    throw new Error(`${file}: not a flashcheck audit database (corrupt?): ${(e as Error).message}`)
  }
  return db
}

/** SQLite error codes that mean the file itself is damaged (as opposed to a full or read-only disk). */
export function isCorruption(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? ''
  return code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT_')
}

/** Moves a damaged database (and its WAL and shm files) aside; returns the new name of the main file. */
export function moveAside(file: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-')
  const dest = `${file}.corrupt-${stamp}`
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, dest + suffix)
  }
  return dest
}

/** The lowest UUIDv7 text of a given epoch millisecond: `verdict_id >= lowerId(t)` selects rows from t on. */
export function lowerId(epochMs: number): string {
  const h = Math.max(0, Math.floor(epochMs)).toString(16).padStart(12, '0').slice(-12)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-0000-0000-000000000000`
}
