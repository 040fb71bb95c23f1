// Memory bandwidth as this machine delivers it right now: worker threads stream-read disjoint
// slices of one shared buffer (WebAssembly SIMD loads) at the same moment; bandwidth = bytes read /
// (last finish - first start). Run in a child process so the buffer is gone when the model runs.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { type Summary, summarize } from './stats.js'
import { readModule, wasm } from './wasm.js'

export interface BandwidthOptions {
  threads: number
  /** Buffer size for the headline figure; should dwarf the last-level cache. */
  bytes: number
  /** Timed passes per size. */
  reps: number
  /** Also measure these smaller working sets (to show where the caches end). */
  sweep: number[]
  /** Also measure one thread alone. */
  singleThread: boolean
}

export interface BandwidthPoint {
  bytes: number
  threads: number
  /** GB/s (1e9 bytes per second) over the timed passes. */
  gbps: Summary
}

export interface BandwidthResult {
  headline: BandwidthPoint
  singleThread?: BandwidthPoint
  sweep: BandwidthPoint[]
}

// Plain JS run inside each worker: wait for a command, meet the others at a spin barrier, read.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { module, memory, ctrl } = workerData
const read = new WebAssembly.Instance(module, { env: { mem: memory } }).exports.read
const c = new Int32Array(ctrl)
let sink = 0
parentPort.on('message', ({ off, len, passes, target }) => {
  Atomics.add(c, 0, 1)
  while (Atomics.load(c, 0) < target) {}
  const t0 = performance.timeOrigin + performance.now()
  for (let r = 0; r < passes; r++) sink ^= read(off, len)
  const t1 = performance.timeOrigin + performance.now()
  parentPort.postMessage({ t0, t1, sink })
})
`

const PAGE = 65536
const ALIGN = 128

export async function measureBandwidth(o: BandwidthOptions): Promise<BandwidthResult> {
  const pages = Math.ceil(o.bytes / PAGE)
  const memory = new wasm.Memory({ initial: pages, maximum: pages, shared: true })
  // Touch every page with real data: untouched pages all map the one zero page and would read from cache.
  new Uint8Array(memory.buffer).fill(0x5a)
  const module = new wasm.Module(readModule())
  const ctrl = new SharedArrayBuffer(4)
  const counter = new Int32Array(ctrl)
  const workers = Array.from({ length: o.threads }, () => new Worker(WORKER, { eval: true, workerData: { module, memory, ctrl } }))
  try {
    const run = async (bytes: number, threads: number): Promise<BandwidthPoint> => {
      const slice = Math.floor(bytes / threads / ALIGN) * ALIGN
      // Enough passes over small working sets that one measurement takes ~0.1 s at 20 GB/s.
      const passes = Math.max(1, Math.round(2e9 / (slice * threads)))
      const samples: number[] = []
      for (let rep = 0; rep <= o.reps; rep++) {
        const target = Atomics.load(counter, 0) + threads
        const replies = workers.slice(0, threads).map(
          (w, i) =>
            new Promise<{ t0: number; t1: number }>((resolve, reject) => {
              const onError = (e: Error) => reject(e)
              w.once('error', onError)
              w.once('message', (m: { t0: number; t1: number }) => {
                w.off('error', onError)
                resolve(m)
              })
              w.postMessage({ off: i * slice, len: slice, passes, target })
            }),
        )
        const times = await Promise.all(replies)
        const secs = (Math.max(...times.map((t) => t.t1)) - Math.min(...times.map((t) => t.t0))) / 1000
        if (rep > 0) samples.push((slice * threads * passes) / secs / 1e9) // rep 0 warms up
      }
      return { bytes: slice * threads, threads, gbps: summarize(samples) }
    }
    const sweep: BandwidthPoint[] = []
    for (const s of o.sweep) sweep.push(await run(Math.min(s, pages * PAGE), o.threads))
    const singleThread = o.singleThread ? await run(pages * PAGE, 1) : undefined
    const headline = await run(pages * PAGE, o.threads)
    return { headline, singleThread, sweep }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

/** Runs measureBandwidth in a child process (which exits afterwards, freeing the buffer). */
export function measureBandwidthInChild(o: BandwidthOptions): Promise<BandwidthResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let result: BandwidthResult | undefined
    child.on('message', (m) => {
      result = m as BandwidthResult
    })
    child.on('error', reject)
    child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`bandwidth child exited with ${code}`))))
    child.send(o)
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--child') {
  process.once('message', (o) => {
    measureBandwidth(o as BandwidthOptions).then(
      (r) => process.send!(r, () => process.exit(0)),
      (e: unknown) => {
        process.stderr.write(`bandwidth measurement failed: ${e instanceof Error ? e.message : String(e)}\n`)
        process.exit(1)
      },
    )
  })
}
