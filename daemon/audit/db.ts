// The audit database: schema, opening (WAL) and what to do with a file that is not a database any more.
// Shared by the daemon's journal (read-write) and `flashcheck audit` (read-only, also while the daemon runs).
import { existsSync, renameSync } from 'node:fs'
import Database from 'better-sqlite3'

export type Db = Database.Database

export const AUDIT_FILE = 'audit.db'

// One row per verdict, stored in `verdict_rows` and read through the view `verdicts`. `seq` is the insertion order
// (and the order retention removes rows in); verdict_id is a UUIDv7, so its text order is time order too and time
// ranges use its index. `response` is the published JSON as it went out: a redelivered request gets it again byte
// for byte. Whatever the response already holds is a column of the view, read from it (nothing stored twice,
// nothing to build or index on the write path); SQLite's JSON keeps the response's own text of numbers and
// strings, so `checks` is the same text the daemon wrote. A view rather than generated columns: SQLite computes
// a table's generated columns, virtual ones too, on every INSERT, which was half of a row's write cost.
// Indexes: verdict_id (time order: ranges, `audit show ID`, and a redelivery's lookup within the millisecond of
// its first inspection) and trace.
// Schema 1 stored the response's columns and indexed the redelivery key (random order: about a page written per
// row); schema 2 held the view's columns as virtual generated columns of the table `verdicts`. A daemon opening
// either moves it to schema 3 (migrate).
const STORED = `
  seq INTEGER PRIMARY KEY,
  verdict_id TEXT NOT NULL,
  trace TEXT,
  model_id TEXT,
  request_topic TEXT NOT NULL,
  response_topic TEXT NOT NULL,
  correlation TEXT,
  dedupe_key TEXT,
  payload_sum INTEGER,
  response TEXT NOT NULL`

/** The view's columns read from the response, as schema 2 declared them (generated columns). */
const FROM_RESPONSE = {
  ts: "response ->> '$.ts'",
  node: "response ->> '$.node'",
  inspection: "response ->> '$.inspection'",
  verdict: "response ->> '$.verdict'",
  error_code: "response ->> '$.error.code'",
  checks: "response -> '$.checks'",
  inputs: "response -> '$.inputs'",
  model: "response -> '$.model'",
  rules_rev: "response ->> '$.rules_rev'",
  latency_ms: "response ->> '$.latency_ms'",
  deadline_missed: "coalesce(response ->> '$.deadline_missed', 0)",
  fallback: "coalesce(response ->> '$.fallback', 0)",
} as const

/** The table rows are written to; readers use the view `verdicts`. */
export const ROWS_TABLE = 'verdict_rows'

/** The columns a row is written with (the rest are read from `response`). */
export const STORED_COLUMNS = ['verdict_id', 'trace', 'model_id', 'request_topic', 'response_topic', 'correlation', 'dedupe_key', 'payload_sum', 'response'] as const

const INDEXES = `
CREATE UNIQUE INDEX IF NOT EXISTS verdicts_id ON ${ROWS_TABLE}(verdict_id);
CREATE INDEX IF NOT EXISTS verdicts_trace ON ${ROWS_TABLE}(trace) WHERE trace IS NOT NULL;`

const VIEW = `CREATE VIEW IF NOT EXISTS verdicts AS SELECT seq, ${STORED_COLUMNS.join(', ')},
  ${Object.entries(FROM_RESPONSE).map(([name, expr]) => `${expr} AS ${name}`).join(',\n  ')}
  FROM ${ROWS_TABLE};`

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ${ROWS_TABLE} (${STORED}
);
${INDEXES}
${VIEW}
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY,
  verdict_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  payload TEXT NOT NULL,
  correlation_data BLOB,
  qos INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_verdict ON outbox(verdict_id);
`

export const SCHEMA_VERSION = '3'

/**
 * A schema-1 file (every column stored) or schema-2 file (the response's columns generated) gets the schema-3
 * table with the same rows, seq kept; returns the rows moved (schema 2: renamed in place, nothing rewritten).
 */
function migrate(db: Db, from: '1' | '2'): number {
  return db.transaction(() => {
    let n: number
    if (from === '2') {
      db.exec(`ALTER TABLE verdicts RENAME TO ${ROWS_TABLE};`)
      // Dropping a virtual column rewrites no row.
      for (const c of Object.keys(FROM_RESPONSE)) db.exec(`ALTER TABLE ${ROWS_TABLE} DROP COLUMN ${c};`)
      n = (db.prepare(`SELECT COUNT(*) AS n FROM ${ROWS_TABLE}`).get() as { n: number }).n
    } else {
      db.exec('ALTER TABLE verdicts RENAME TO verdicts_v1; DROP INDEX IF EXISTS verdicts_trace; DROP INDEX IF EXISTS verdicts_dedupe;')
      db.exec(`CREATE TABLE ${ROWS_TABLE} (${STORED}\n);`)
      const cols = ['seq', ...STORED_COLUMNS].join(', ')
      n = db.prepare(`INSERT INTO ${ROWS_TABLE} (${cols}) SELECT ${cols} FROM verdicts_v1 ORDER BY seq`).run().changes
      db.exec('DROP TABLE verdicts_v1;')
    }
    db.exec(`${INDEXES}\n${VIEW}`)
    db.prepare("UPDATE meta SET v = ? WHERE k = 'schema'").run(SCHEMA_VERSION)
    return n
  })()
}

/**
 * Opens (creating) a read-write connection in WAL mode; an older schema is migrated first (`onMigrated` hears
 * how many rows moved, and from which schema). Throws what SQLite says.
 */
export function openWritable(file: string, sync: 'normal' | 'full', onMigrated?: (rows: number, from: string) => void): Db {
  const db = new Database(file)
  try {
    db.pragma('journal_mode = WAL')
    // normal: a commit reaches the OS (survives a killed process); full: fsync per batch (survives power loss).
    db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`)
    db.pragma('busy_timeout = 1000')
    db.exec('CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);')
    const version = (db.prepare("SELECT v FROM meta WHERE k = 'schema'").get() as { v: string } | undefined)?.v
    if (version === '1' || version === '2') onMigrated?.(migrate(db, version), version)
    db.exec(SCHEMA)
    db.prepare("INSERT OR IGNORE INTO meta(k, v) VALUES ('schema', ?)").run(SCHEMA_VERSION)
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
    const t = db.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name = 'verdicts'").get()
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
