// bench/audit/insert: SQLite's cost per journal row alone (no spool, no thread), the schema the daemon writes
// against the schema-2 table it replaced (the response's columns as virtual generated columns, which SQLite
// computes on every INSERT), in the same run, alternating rounds. Rows of the latency bench's shape, inserted
// as the ingest thread does: one prepared INSERT OR IGNORE per row, `--batch` rows per transaction.
//   node dist/bench/audit/insert.js [--rows 40000] [--batch 100] [--rounds 3]
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import { openWritable, ROWS_TABLE, STORED_COLUMNS } from '../../daemon/audit/db.js'
import { verdictId } from '../../daemon/audit/record.js'
import { SCHEMA_2_VERDICTS } from '../../harness/audit-schema-2.js'

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '40000' },
    batch: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
  },
})
const rows = Number(values.rows)
const batch = Number(values.batch)
const rounds = Number(values.rounds)

type Row = [string, string, null, string, string, string, string, number, string]

function makeRows(n: number): Row[] {
  const out: Row[] = []
  const t0 = Date.now()
  for (let i = 0; i < n; i++) {
    const id = verdictId(t0 + Math.floor(i / 2))
    const response = JSON.stringify({
      verdict_id: id, ts: new Date(t0 + Math.floor(i / 2)).toISOString(), inspection: 'torque-joint', verdict: 'WARN',
      checks: [{ id: 'torque-in-spec', ok: true, on_fail: 'FAIL', values: { torque: 11.2 } }, { id: 'angle-window', ok: true, on_fail: 'REWORK', values: { angle: 720 } },
        { id: 'spindle-calm', ok: false, on_fail: 'WARN', values: { 'count(vib, "2s")': 0 } }],
      inputs: { torque: 11.2, angle: 720, station: 'st1', serial: 'SN-0001' }, latency_ms: 0.213, deadline_missed: false, rules_rev: '983c09995761', node: 'bench', trace: 'SN-0001',
    })
    out.push([id, 'SN-0001', null, 'flashcheck/inspect/st1/torque', `bench/reply/${i % 8}`, (i % 65536).toString(16), `bench/reply/${i % 8}\u0000${i}`, i, response])
  }
  return out
}

/** CPU µs per row inserting `data` into a fresh database of the given schema. */
function round(schema: 2 | 3, data: Row[]): number {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-bench-insert-'))
  try {
    let db: Database.Database
    let table: string
    if (schema === 3) {
      db = openWritable(join(dir, 'audit.db'), 'normal')
      table = ROWS_TABLE
    } else {
      db = new Database(join(dir, 'audit.db'))
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      db.exec(SCHEMA_2_VERDICTS)
      table = 'verdicts'
    }
    const ins = db.prepare(`INSERT OR IGNORE INTO ${table} (${STORED_COLUMNS.join(', ')}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    const tx = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const r = data[i]
        ins.run(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
      }
    })
    const c0 = process.cpuUsage()
    for (let i = 0; i < data.length; i += batch) tx(i, Math.min(data.length, i + batch))
    const c = process.cpuUsage(c0)
    db.close()
    return (c.user + c.system) / data.length
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const data = makeRows(rows)
round(2, data.slice(0, 5000))
round(3, data.slice(0, 5000))
const r: Record<2 | 3, number[]> = { 2: [], 3: [] }
for (let k = 0; k < rounds; k++) {
  r[2].push(round(2, data))
  r[3].push(round(3, data))
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(`cpu: ${cpus()[0]?.model ?? '?'} (${process.arch}), node ${process.version}, load average ${loadavg()[0].toFixed(2)}; ${rounds} rounds of ${rows} rows, ${batch} per transaction, in ${tmpdir()}`)
console.log(`schema 2 (generated columns, baseline): ${median(r[2]).toFixed(2)} µs CPU per row [${r[2].map((x) => x.toFixed(2)).join(' ')}]`)
console.log(`schema 3 (view):                        ${median(r[3]).toFixed(2)} µs CPU per row [${r[3].map((x) => x.toFixed(2)).join(' ')}]`)
console.log(`insert cost schema 3 / schema 2: ${(median(r[3]) / median(r[2])).toFixed(2)}x`)
