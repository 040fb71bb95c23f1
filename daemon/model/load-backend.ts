// Picks the decoder implementation named by model.backend. Each backend is imported only when chosen, so
// a native-only gateway never loads onnxruntime and an onnx one does not need the addon's threads.
import type { Config } from '../config/schema.js'
import type { BackendKind, DecoderBackend } from './backend.js'
import type { OnnxOptions } from './onnx/backend.js'

export interface BackendOptions {
  /** Compute threads; 0 = one per core. */
  threads?: number
  /** native backend: priority decrement (nice) of the compute threads, below the event loop's. */
  nice?: number
  /** onnx backend only: providers, exported graphs, TensorRT options, runtime module (model.onnx.*). */
  onnx?: Omit<OnnxOptions, 'threads'>
}

/** The options loadBackend takes, from the daemon's model.* configuration. */
export function backendOptions(model: Config['model']): BackendOptions {
  const o = model.onnx
  return {
    threads: model.threads,
    nice: model.nice,
    onnx: {
      providers: o.providers,
      graphs: o.graphs,
      runtime: o.runtimePath,
      trt: { engineCachePath: o.trtEngineCachePath, fp16: o.trtFp16, maxWorkspaceSize: o.trtMaxWorkspaceBytes },
    },
  }
}

export async function loadBackend(kind: BackendKind, dir: string, opts: BackendOptions = {}): Promise<DecoderBackend> {
  switch (kind) {
    case 'native': {
      const { NativeBackend } = await import('./native-backend.js')
      return NativeBackend.load(dir, opts.threads ?? 0, opts.nice ?? 0)
    }
    case 'onnx': {
      const { OnnxBackend } = await import('./onnx/backend.js')
      return OnnxBackend.load(dir, { ...opts.onnx, threads: opts.threads ?? 0 })
    }
  }
}
