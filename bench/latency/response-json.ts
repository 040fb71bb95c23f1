// bench/latency/response-json: the response writers against JSON.stringify (the baseline, same run, interleaved)
// on responses of the torque-joint example's shape, each also encoded to UTF-8 bytes as the MQTT client does:
// the generic writer (responseJson) and the one the daemon uses, compiled for the rule's shapes.
// Best of the rounds: on a shared host the slow rounds are the neighbours', not the writer's.
//   node dist/bench/latency/response-json.js [--responses 1000] [--rounds 15]
import { availableParallelism, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { responseJson } from '../../daemon/service/response-json.js'
import type { Response } from '../../daemon/service/response.js'
import { shapedResponseJson } from '../../daemon/service/response-shape.js'
import { cpuInfo, vectorIsa } from '../kernel/cpu-peak.js'

const { values } = parseArgs({ options: { responses: { type: 'string', default: '1000' }, rounds: { type: 'string', default: '15' } } })
const count = Number(values.responses)
const rounds = Number(values.rounds)

/** What reply() builds for the example request: three checks, the last one failed, a correlation id. */
function example(i: number): Response {
  const torque = 11 + (i % 10) / 10
  const angle = 700 + (i % 50)
  return {
    verdict_id: `019ae4a2-5a3a-71be-b8a8-0dbb6088${(1000 + i).toString(16).padStart(4, '0')}`,
    ts: `2026-12-03T14:07:${String(10 + (i % 50)).padStart(2, '0')}.${String(i % 1000).padStart(3, '0')}Z`,
    inspection: 'torque-joint',
    verdict: 'WARN',
    checks: [
      { id: 'torque-in-spec', ok: true, on_fail: 'FAIL', values: { torque } },
      { id: 'angle-window', ok: true, on_fail: 'REWORK', values: { angle } },
      { id: 'spindle-calm', ok: false, on_fail: 'WARN', values: { 'count(vib, "2s")': 3, 'avg(vib, "2s")': 1.1 + (i % 7) * 0.03, 'age_ms(vib)': i % 40 } },
    ],
    inputs: { torque, angle, station: 'st1' },
    latency_ms: Math.round(((i * 7919) % 20000)) / 1000,
    deadline_missed: false,
    rules_rev: '983c09995761',
    node: 'line4-gw',
    correlation_id: `req-${i}`,
  }
}

const responses = Array.from({ length: count }, (_, i) => example(i))
/** The rule that answers: the shaped writer keeps its shapes per rule. */
const rule = {}
const shaped = (r: Response): string => shapedResponseJson(rule, r)
for (const r of responses) {
  const want = JSON.stringify(r)
  if (responseJson(r) !== want || shaped(r) !== want) throw new Error(`a writer differs from JSON.stringify on ${want}`)
}
const writers: Array<[string, (r: Response) => string]> = [['JSON.stringify', JSON.stringify], ['responseJson', responseJson], ['shaped', shaped]]
const best = new Map<string, { build: number; encoded: number }>()
let sink = 0
for (let round = 0; round < rounds; round++) {
  for (const [name, write] of writers) {
    for (const r of responses) sink += Buffer.from(write(r)).length
    const t0 = performance.now()
    for (let k = 0; k < 100; k++) for (const r of responses) sink += write(r).length
    const t1 = performance.now()
    for (let k = 0; k < 100; k++) for (const r of responses) sink += Buffer.from(write(r)).length
    const t2 = performance.now()
    const us = (ms: number) => (ms * 1000) / (100 * count)
    const b = best.get(name) ?? { build: Infinity, encoded: Infinity }
    best.set(name, { build: Math.min(b.build, us(t1 - t0)), encoded: Math.min(b.encoded, us(t2 - t1)) })
  }
}
if (sink === 0) throw new Error('nothing was written')
const cpu = cpuInfo()
console.log(`machine: ${cpu.model}, ${cpu.arch}, ISA ${vectorIsa(cpu)} (JavaScript only), ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`)
console.log(`bench/latency/response-json: ${count} example responses (${Buffer.byteLength(responseJson(responses[0]!))} bytes), best of ${rounds} interleaved rounds`)
for (const [name, b] of best) console.log(`${name.padEnd(15)} ${b.build.toFixed(3)} µs to write, ${b.encoded.toFixed(3)} µs with its UTF-8 bytes`)
const base = best.get('JSON.stringify')!
for (const name of ['responseJson', 'shaped']) {
  const mine = best.get(name)!
  console.log(`${name} vs JSON.stringify: ${(base.build / mine.build).toFixed(2)}x faster to write, ${(base.encoded / mine.encoded).toFixed(2)}x with the bytes`)
}
