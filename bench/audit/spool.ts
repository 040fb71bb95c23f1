// bench/audit/spool: what appending a verdict's line to the journal's spool costs the event loop, a segment
// written with write() (the fallback) against a preallocated, memory-mapped one, in the same run, alternating
// rounds. Lines of the latency bench's shape, one append per verdict (as at 2,000 verdicts/s, where a turn holds
// one or two); the ingest is not running, so this is the event loop's side only. Also the wall time of an append
// that starts a new segment (every 16 MiB), a stall the event loop takes every few seconds at that rate.
//   node dist/bench/audit/spool.js [--lines 100000] [--rounds 3]
import { mkdtempSync, rmSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { nativeMapFile, SpoolWriter, spoolLine } from '../../daemon/audit/spool.js'
import { verdictId } from '../../daemon/audit/record.js'

const { values } = parseArgs({ options: { lines: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '3' } } })
const lines = Number(values.lines)
const rounds = Number(values.rounds)

function line(i: number): string {
  const id = verdictId(Date.now())
  const response = JSON.stringify({
    verdict_id: id, ts: new Date().toISOString(), inspection: 'torque-joint', verdict: 'WARN',
    checks: [{ id: 'torque-in-spec', ok: true, on_fail: 'FAIL', values: { torque: 11.2 } }, { id: 'angle-window', ok: true, on_fail: 'REWORK', values: { angle: 720 } },
      { id: 'spindle-calm', ok: false, on_fail: 'WARN', values: { 'count(vib, "2s")': 0 } }],
    inputs: { torque: 11.2, angle: 720, station: 'st1', serial: 'SN-0001' }, latency_ms: 0.213, deadline_missed: false, rules_rev: '983c09995761', node: 'bench',
  })
  return spoolLine(i, { verdict_id: id, trace: null, model_id: null, request_topic: 'flashcheck/inspect/st1/torque', response_topic: `bench/reply/${i % 8}`, correlation: (i % 65536).toString(16), dedupe_key: `bench/reply/${i % 8}\u0000${i}`, payload_sum: i, response })
}

type Mode = 'write()' | 'mapped'

interface Round { cpu: number; sys: number; rolls: number[] }

/** CPU µs per append (user, system) over `lines` appends into a fresh spool; the wall ms of each append that started a new segment. */
function round(mode: Mode, text: string[]): Round {
  const dir = mkdtempSync(join(tmpdir(), 'flashcheck-bench-spool-'))
  try {
    const w = new SpoolWriter(join(dir, 'audit-spool'), false, undefined, undefined, mode === 'mapped' ? nativeMapFile() ?? null : null)
    w.open()
    if ((mode === 'mapped') !== w.mapped) throw new Error(`${mode}: not available here (${w.unmapped ?? 'no addon'})`)
    const c0 = process.cpuUsage()
    for (let i = 0; i < text.length; i++) w.write(text[i])
    const c = process.cpuUsage(c0)
    // Apart from the CPU pass, so that the clock reads do not count in it.
    const rolls: number[] = []
    let seg = w.segment
    for (let i = 0; i < text.length; i++) {
      const t0 = performance.now()
      w.write(text[i])
      if (w.segment !== seg) {
        rolls.push(performance.now() - t0)
        seg = w.segment
      }
    }
    w.close()
    return { cpu: (c.user + c.system) / text.length, sys: c.system / text.length, rolls }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const text = Array.from({ length: lines }, (_, i) => line(i + 1))
const bytes = text.reduce((s, l) => s + Buffer.byteLength(l), 0) / lines
console.log(`bench/audit/spool: ${lines} appends of ${bytes.toFixed(0)} B per round, ${rounds} alternating rounds, state in ${tmpdir()}; ${cpus()[0]?.model ?? '?'} (${process.arch}, ${availableParallelism()} cores), load average ${loadavg()[0].toFixed(2)}`)
round('write()', text.slice(0, 5000))
round('mapped', text.slice(0, 5000))
const res: Record<Mode, Round[]> = { 'write()': [], mapped: [] }
for (let r = 0; r < rounds; r++) for (const m of (r % 2 ? ['mapped', 'write()'] : ['write()', 'mapped']) as Mode[]) res[m].push(round(m, text))
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
for (const m of ['write()', 'mapped'] as Mode[]) {
  const rolls = res[m].flatMap((x) => x.rolls)
  console.log(`${m.padEnd(8)} ${median(res[m].map((x) => x.cpu)).toFixed(2)} µs CPU per append (of which system ${median(res[m].map((x) => x.sys)).toFixed(2)}) [${res[m].map((x) => x.cpu.toFixed(2)).join(' ')}]; an append that starts a new segment: median ${median(rolls).toFixed(2)} ms, max ${Math.max(...rolls).toFixed(2)} ms (${rolls.length})`)
}
console.log(`mapped/write(): ${(median(res.mapped.map((x) => x.cpu)) / median(res['write()'].map((x) => x.cpu))).toFixed(2)}x CPU per append`)
