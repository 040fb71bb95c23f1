// DecoderBackend over the native kernel: forwards run on the addon's thread pool and resolve promises.
import { KernelError, type DecoderBackend, type DecoderState, type ModelConfig, type PrefillOpts, type QuantType } from './backend.js'
import { Model, State } from './kernel.js'

class NativeDecoderState implements DecoderState {
  private disposed = false
  constructor(readonly state: State) {}
  get position(): number {
    return this.state.position
  }
  get lastMs(): number {
    return this.state.lastMs
  }
  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this.state.dispose()
  }
}

export class NativeBackend implements DecoderBackend {
  readonly kind = 'native' as const
  readonly lastRows = true
  readonly config: ModelConfig

  private constructor(private readonly model: Model) {
    this.config = model.config
  }

  static async load(dir: string, threads = 0, nice = 0, quantize: QuantType = 'none'): Promise<NativeBackend> {
    return new NativeBackend(await Model.loadAsync(dir, { threads, nice, quantize }))
  }

  private unwrap(s: DecoderState): State {
    if (!(s instanceof NativeDecoderState)) throw new KernelError('state was not created by the native backend', 'E_INVALID_ARGUMENT')
    return s.state
  }

  async newState(): Promise<DecoderState> {
    return new NativeDecoderState(this.model.newState())
  }

  async clone(state: DecoderState): Promise<DecoderState> {
    return new NativeDecoderState(this.unwrap(state).clone())
  }

  prefill(state: DecoderState, tokens: Int32Array, opts?: PrefillOpts): Promise<Float32Array> {
    return this.model.prefillAsync(this.unwrap(state), tokens, opts)
  }

  async dispose(): Promise<void> {
    this.model.dispose()
  }
}
