// Picks the decoder implementation named by model.backend. Each backend is imported only when chosen, so
// a native-only gateway never loads onnxruntime and an onnx one does not need the addon's threads.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Config } from '../config/schema.js'
import { type BackendKind, type DecoderBackend, ModelLoadError, type QuantType } from './backend.js'
import type { OnnxOptions } from './onnx/backend.js'

export interface BackendOptions {
  /** Compute threads; 0 = one per core. */
  threads?: number
  /** native backend: priority decrement (nice) of the compute threads, below the event loop's. */
  nice?: number
  /** native backend: quantize a float checkpoint at load (model.quantize). */
  quantize?: QuantType
  /** onnx backend only: providers, exported graphs, TensorRT options, runtime module (model.onnx.*). */
  onnx?: Omit<OnnxOptions, 'threads'>
}

/** The options loadBackend takes, from the daemon's model.* configuration. */
export function backendOptions(model: Config['model']): BackendOptions {
  const o = model.onnx
  return {
    threads: model.threads,
    nice: model.nice,
    quantize: model.quantize,
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
      return NativeBackend.load(dir, opts.threads ?? 0, opts.nice ?? 0, opts.quantize ?? 'none')
    }
    case 'onnx': {
      await refuseQuantizedOnnx(dir, opts.quantize ?? 'none')
      const { OnnxBackend } = await import('./onnx/backend.js')
      return OnnxBackend.load(dir, { ...opts.onnx, threads: opts.threads ?? 0 })
    }
  }
}

/** The exported ONNX graphs compute in float: a quantization request or a quantized checkpoint is a
 *  configuration error, said before anything is exported. */
async function refuseQuantizedOnnx(dir: string, quantize: QuantType): Promise<void> {
  if (quantize !== 'none') {
    throw new ModelLoadError(`model.quantize ${quantize}: the onnx backend runs float weights only; set model.quantize none or model.backend native`)
  }
  let cfg: { quantization_config?: { type?: string } }
  try {
    cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as typeof cfg
  } catch {
    return // the backend's own loader reports a missing or broken config.json
  }
  if (cfg.quantization_config) {
    throw new ModelLoadError(
      `${join(dir, 'config.json')}: a ${cfg.quantization_config.type ?? 'quantized'} checkpoint (quantization_config); the onnx backend runs float checkpoints only — use model.backend native, or point model.dir at the float checkpoint (model.quantize quantizes it at load with the native backend)`,
    )
  }
}
