// DecoderBackend over onnxruntime: the exported prefill and decode graphs run in a worker thread (see
// worker.ts); this side validates, queues requests and tracks positions. Needs no native addon.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { DecoderBackend, DecoderState, PrefillOpts } from '../backend.js'
import { KernelError, type ModelConfig } from '../backend.js'
import { modelConfig, openCheckpoint } from './checkpoint.js'
import { exportOnnx, fingerprint, MANIFEST, type Manifest, stateSpecs } from './export.js'
import type { Hello, Reply, Request, WorkerInit } from './worker.js'

export interface TensorRtOptions {
  /** Directory of built TensorRT engines (reused across restarts); empty = no engine cache. */
  engineCachePath?: string
  fp16?: boolean
  /** Builder workspace limit in bytes; 0 = TensorRT's default. */
  maxWorkspaceSize?: number
}

export interface OnnxOptions {
  /** intra-op threads of each session; 0 = onnxruntime's default (one per core). */
  threads?: number
  /** Execution providers in priority order, e.g. ['tensorrt', 'cuda', 'cpu']; default ['cpu']. */
  providers?: string[]
  /** Directory written by `flashcheck model export-onnx`; empty = export now into a temporary directory. */
  graphs?: string
  trt?: TensorRtOptions
  /** Module id or path of the onnxruntime-node package to load; default 'onnxruntime-node'. */
  runtime?: string
  /** Longest chunk of one prefill run (default 256, as the native kernel). */
  chunk?: number
}

export const PROVIDERS = ['tensorrt', 'cuda', 'cpu'] as const

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

class OnnxState implements DecoderState {
  position = 0
  /** ms the last prefill took in the worker (without the wait for the event loop to take the result). */
  lastMs: number | undefined
  busy = false
  disposed = false
  constructor(readonly backend: OnnxBackend, readonly id: number) {}
  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this.backend.free(this)
  }
}

/** TensorRT EP option names (as onnxruntime spells them) from the config's. */
function trtProviderOptions(t: TensorRtOptions): Record<string, unknown> {
  const o: Record<string, unknown> = {}
  if (t.engineCachePath) {
    o.trt_engine_cache_enable = true
    o.trt_engine_cache_path = t.engineCachePath
    o.trt_timing_cache_enable = true
    o.trt_timing_cache_path = t.engineCachePath
  }
  if (t.fp16) o.trt_fp16_enable = true
  if (t.maxWorkspaceSize) o.trt_max_workspace_size = t.maxWorkspaceSize
  return o
}

/** The same options as the TensorRT EP's environment variables, for builds whose Node binding forwards no
 *  provider options (the stock binding passes deviceId only). Set in the main thread: worker threads get
 *  a copy of process.env, but the EP reads the process environment. */
function trtEnv(t: TensorRtOptions): void {
  if (t.engineCachePath) {
    process.env.ORT_TENSORRT_ENGINE_CACHE_ENABLE = '1'
    process.env.ORT_TENSORRT_CACHE_PATH = t.engineCachePath
    process.env.ORT_TENSORRT_TIMING_CACHE_ENABLE = '1'
  }
  if (t.fp16) process.env.ORT_TENSORRT_FP16_ENABLE = '1'
  if (t.maxWorkspaceSize) process.env.ORT_TENSORRT_MAX_WORKSPACE_SIZE = String(t.maxWorkspaceSize)
}

// worker.js beside the compiled backend.js; worker.ts beside backend.ts when run from source (tests)
const WORKER_URL = new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url)

export class OnnxBackend implements DecoderBackend {
  readonly kind = 'onnx' as const
  /** PrefillOpts.lastRows: the prefill graph runs the cross-decoder and head on those rows only. */
  readonly lastRows = true
  private readonly pending = new Map<number, { resolve: (r: Reply & { ok: true }) => void; reject: (e: Error) => void }>()
  private nextId = 1
  private dead: Error | undefined

  private constructor(
    readonly config: ModelConfig,
    private readonly worker: Worker,
    /** Providers the sessions run on, and those dropped because they failed to load (with why). */
    readonly providers: string[],
    readonly dropped: string[],
    private readonly tempDir: string | undefined,
  ) {
    worker.on('message', (m: Reply) => {
      const p = this.pending.get(m.id)
      if (!p) return
      this.pending.delete(m.id)
      if (m.ok) p.resolve(m)
      else p.reject(new KernelError(m.error, 'E_KERNEL'))
    })
    const fail = (err: Error) => {
      this.dead = err
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
    }
    worker.on('error', (err) => fail(new KernelError(`onnxruntime worker failed: ${err.message}`, 'E_KERNEL')))
    worker.on('exit', () => fail(new KernelError('onnxruntime backend disposed', 'E_DISPOSED')))
  }

  static async load(dir: string, opts: OnnxOptions = {}): Promise<OnnxBackend> {
    const ck = await openCheckpoint(dir)
    const providers = opts.providers?.length ? opts.providers : ['cpu']
    let graphs = opts.graphs
    let tempDir: string | undefined
    if (graphs) {
      const mf = join(graphs, MANIFEST)
      if (!existsSync(mf)) throw new Error(`${graphs}: no ${MANIFEST} (write the graphs with \`flashcheck model export-onnx ${dir} --out ${graphs}\`)`)
      const m = JSON.parse(readFileSync(mf, 'utf8')) as Manifest
      if (m.fingerprint !== fingerprint(ck)) {
        throw new Error(`${graphs} was exported from another checkpoint than ${dir} (export again with \`flashcheck model export-onnx\`)`)
      }
    } else {
      tempDir = mkdtempSync(join(tmpdir(), 'flashcheck-onnx-'))
      try {
        await exportOnnx(dir, tempDir)
      } catch (err) {
        rmSync(tempDir, { recursive: true, force: true })
        throw err
      }
      graphs = tempDir
    }
    const m = JSON.parse(readFileSync(join(graphs, MANIFEST), 'utf8')) as Manifest
    const trt = opts.trt ?? {}
    if (providers.includes('tensorrt')) trtEnv(trt)
    const init: WorkerInit = {
      prefillPath: join(graphs, m.graphs.prefill),
      decodePath: join(graphs, m.graphs.decode),
      states: stateSpecs(ck.arch),
      providers,
      threads: opts.threads ?? 0,
      trt: trtProviderOptions(trt),
      runtime: opts.runtime || 'onnxruntime-node',
      chunk: opts.chunk ?? 256,
    }
    const worker = new Worker(WORKER_URL, { workerData: init })
    let hello: Hello
    // only these listeners are removed afterwards: Worker keeps internal ones of its own
    let onMessage!: (h: Hello) => void
    let onError!: (e: Error) => void
    let onExit!: (code: number) => void
    try {
      hello = await new Promise<Hello>((resolve, reject) => {
        onMessage = resolve
        onError = reject
        onExit = (code) => reject(new Error(`onnxruntime worker exited (${code}) while loading`))
        worker.once('message', onMessage).once('error', onError).once('exit', onExit)
      })
    } catch (err) {
      await worker.terminate()
      if (tempDir) rmSync(tempDir, { recursive: true, force: true })
      throw err
    } finally {
      worker.off('message', onMessage).off('error', onError).off('exit', onExit)
    }
    if (!hello.ready) {
      await worker.terminate()
      if (tempDir) rmSync(tempDir, { recursive: true, force: true })
      throw new Error(`onnxruntime could not load ${graphs}: ${hello.error}`)
    }
    const config = modelConfig(ck, opts.threads ?? 0, `onnxruntime:${hello.providers.join(',')}`)
    return new OnnxBackend(config, worker, hello.providers, hello.dropped, tempDir)
  }

  private call(req: DistributiveOmit<Request, 'id'>, transfer: ArrayBuffer[] = []): Promise<Reply & { ok: true }> {
    if (this.dead) return Promise.reject(this.dead)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ ...req, id }, transfer)
    })
  }

  private unwrap(s: DecoderState): OnnxState {
    if (!(s instanceof OnnxState) || s.backend !== this) throw new KernelError('state was not created by this onnx backend', 'E_INVALID_ARGUMENT')
    if (s.disposed) throw new KernelError('state is disposed', 'E_DISPOSED')
    return s
  }

  async newState(): Promise<DecoderState> {
    const r = await this.call({ op: 'new' })
    return new OnnxState(this, r.state!)
  }

  async clone(state: DecoderState): Promise<DecoderState> {
    const s = this.unwrap(state)
    if (s.busy) throw new KernelError('state is in use by a running prefill', 'E_STATE_BUSY')
    const r = await this.call({ op: 'clone', state: s.id })
    const c = new OnnxState(this, r.state!)
    c.position = s.position
    return c
  }

  async prefill(state: DecoderState, tokens: Int32Array, opts?: PrefillOpts): Promise<Float32Array> {
    const s = this.unwrap(state)
    if (s.busy) throw new KernelError('state is in use by a running prefill', 'E_STATE_BUSY')
    if (tokens.length === 0) throw new KernelError('at least one token is needed', 'E_INVALID_ARGUMENT')
    const V = this.config.vocab_size
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!
      if (t < 0 || t >= V) throw new KernelError(`token id ${t} at index ${i} is out of range [0, ${V})`, 'E_INVALID_ARGUMENT')
    }
    let rows = 1
    if (opts?.allLogits === true) rows = tokens.length
    else if (opts?.lastRows !== undefined) {
      rows = opts.lastRows
      if (!Number.isInteger(rows) || rows < 1 || rows > tokens.length) {
        throw new KernelError('logits rows must be an integer from 1 to the number of tokens', 'E_INVALID_ARGUMENT')
      }
    }
    s.busy = true
    try {
      const r = await this.call({ op: 'run', state: s.id, tokens: Int32Array.from(tokens), rows })
      s.position += tokens.length
      s.lastMs = r.ms
      return r.logits!
    } finally {
      s.busy = false
    }
  }

  /** @internal */
  free(s: OnnxState): void {
    if (!this.dead) this.call({ op: 'free', state: s.id }).catch(() => {})
  }

  async dispose(): Promise<void> {
    if (!this.dead) {
      await this.call({ op: 'close' }).catch(() => {})
      await this.worker.terminate()
    }
    if (this.tempDir) rmSync(this.tempDir, { recursive: true, force: true })
  }
}
