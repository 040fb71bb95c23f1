// onnxruntime sessions in a worker thread: session.run blocks the thread that calls it in the Node binding,
// so the daemon's event loop never calls it. Decode states live here as tensors, referenced by id.
// State tensors are never written in place (every run returns fresh present.* tensors that replace the
// state's), so a clone shares them with its source: copy-on-write for free, clone costs no copy.
import { createRequire } from 'node:module'
import { parentPort, workerData } from 'node:worker_threads'
import type * as Ort from 'onnxruntime-node'

export interface WorkerInit {
  prefillPath: string
  decodePath: string
  /** Empty state: input name → shape of a fresh tensor. */
  states: { name: string; empty: number[] }[]
  providers: string[]
  threads: number
  /** tensorrt execution provider options, passed through. */
  trt: Record<string, unknown>
  /** Module id or path of the onnxruntime-node build to load (a TensorRT-enabled build on Jetson). */
  runtime: string
  /** Longest chunk one prefill run takes (bounds the scan's [T, d_inner, N] intermediates). */
  chunk: number
}

export type Request =
  | { id: number; op: 'new' }
  | { id: number; op: 'clone'; state: number }
  | { id: number; op: 'free'; state: number }
  /** rows: how many trailing positions' logits to return (1 = the last, tokens.length = all). */
  | { id: number; op: 'run'; state: number; tokens: Int32Array; rows: number }
  | { id: number; op: 'close' }

export type Reply =
  | { id: number; ok: true; state?: number; logits?: Float32Array; ms?: number }
  | { id: number; ok: false; error: string }

/** providers: those the sessions were created with; dropped: providers that failed to load, with why. */
export type Hello = { ready: true; providers: string[]; dropped: string[] } | { ready: false; error: string }

type Feeds = Record<string, Ort.Tensor>

function providerList(names: string[], trt: Record<string, unknown>): Ort.InferenceSession.ExecutionProviderConfig[] {
  return names.map((n) => (n === 'tensorrt' ? ({ name: 'tensorrt', ...trt } as Ort.InferenceSession.ExecutionProviderConfig) : { name: n }))
}

async function main(): Promise<void> {
  const init = workerData as WorkerInit
  const port = parentPort!
  let ort: typeof Ort
  let prefill!: Ort.InferenceSession
  let decode!: Ort.InferenceSession
  let providers = [...init.providers]
  const dropped: string[] = []
  try {
    ort = createRequire(import.meta.url)(init.runtime) as typeof Ort
    for (;;) {
      const opts: Ort.InferenceSession.SessionOptions = {
        executionProviders: providerList(providers, init.trt),
        graphOptimizationLevel: 'all',
        ...(init.threads > 0 ? { intraOpNumThreads: init.threads } : {}),
        interOpNumThreads: 1,
        executionMode: 'sequential',
      }
      try {
        prefill = await ort.InferenceSession.create(init.prefillPath, opts)
        decode = await ort.InferenceSession.create(init.decodePath, opts)
        break
      } catch (err) {
        // a GPU provider whose libraries are absent fails session creation: fall back along the list
        if (providers.length <= 1) throw err
        dropped.push(`${providers[0]}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`)
        providers = providers.slice(1)
      }
    }
  } catch (err) {
    port.postMessage({ ready: false, error: err instanceof Error ? err.message : String(err) } satisfies Hello)
    return
  }

  const states = new Map<number, Feeds>()
  let nextId = 1
  const empty = (): Feeds => {
    const f: Feeds = {}
    for (const s of init.states) f[s.name] = new ort.Tensor('float32', new Float32Array(s.empty.reduce((n, d) => n * d, 1)), s.empty)
    return f
  }
  const get = (id: number): Feeds => {
    const s = states.get(id)
    if (!s) throw new Error(`unknown or disposed state ${id}`)
    return s
  }

  /** Runs tokens through the state in chunks; returns the logits of the last `rows` positions. The wanted
   *  rows are a suffix of the sequence, so in each chunk they are a suffix too: the prefill graph's
   *  last_rows input asks for exactly those. */
  const run = async (st: Feeds, tokens: Int32Array, rows: number): Promise<Float32Array> => {
    const parts: Float32Array[] = []
    const from = tokens.length - rows
    for (let c0 = 0; c0 < tokens.length; c0 += init.chunk) {
      const chunk = tokens.subarray(c0, Math.min(tokens.length, c0 + init.chunk))
      const T = chunk.length
      const want = c0 + T - Math.max(c0, from)
      const feeds: Feeds = { ...st, tokens: new ort.Tensor('int32', Int32Array.from(chunk), [T]) }
      const session = T === 1 ? decode : prefill
      if (T > 1) feeds.last_rows = new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.max(1, want))), [1])
      const out = await session.run(feeds)
      for (const s of init.states) st[s.name] = out[s.name.replace(/^past\./, 'present.')]!
      if (want > 0) parts.push(out.logits!.data as Float32Array)
    }
    if (parts.length === 1) return parts[0]!
    const res = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
    let off = 0
    for (const p of parts) {
      res.set(p, off)
      off += p.length
    }
    return res
  }

  // one request at a time, in arrival order (like the native kernel's compute lock): a clone or run never
  // sees a state halfway through another run
  let queue: Promise<void> = Promise.resolve()
  port.on('message', (m: Request) => {
    queue = queue.then(async () => {
      try {
        switch (m.op) {
          case 'new': {
            const id = nextId++
            states.set(id, empty())
            port.postMessage({ id: m.id, ok: true, state: id } satisfies Reply)
            break
          }
          case 'clone': {
            const id = nextId++
            states.set(id, { ...get(m.state) })
            port.postMessage({ id: m.id, ok: true, state: id } satisfies Reply)
            break
          }
          case 'free':
            states.delete(m.state)
            port.postMessage({ id: m.id, ok: true } satisfies Reply)
            break
          case 'run': {
            const st = get(m.state)
            // run on a copy so that a failed run leaves the state as it was
            const next = { ...st }
            const t0 = performance.now()
            const logits = await run(next, m.tokens, m.rows)
            const ms = performance.now() - t0
            Object.assign(st, next)
            // a logits view may share its buffer with ORT's output arena: copy when it does not own it
            const own = logits.byteOffset === 0 && logits.byteLength === logits.buffer.byteLength ? logits : logits.slice()
            port.postMessage({ id: m.id, ok: true, logits: own, ms } satisfies Reply, [own.buffer as ArrayBuffer])
            break
          }
          case 'close':
            states.clear()
            await prefill.release()
            await decode.release()
            port.postMessage({ id: m.id, ok: true } satisfies Reply)
            break
        }
      } catch (err) {
        port.postMessage({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies Reply)
      }
    })
  })
  port.postMessage({ ready: true, providers, dropped } satisfies Hello)
}

void main()
