// Picks the decoder implementation named by model.backend. Each backend is imported only when chosen, so
// a native-only gateway never loads onnxruntime and an onnx one does not need the addon's threads.
import type { BackendKind, DecoderBackend } from './backend.js'

export interface BackendOptions {
  /** Compute threads; 0 = one per core. */
  threads?: number
}

export async function loadBackend(kind: BackendKind, dir: string, opts: BackendOptions = {}): Promise<DecoderBackend> {
  switch (kind) {
    case 'native': {
      const { NativeBackend } = await import('./native-backend.js')
      return NativeBackend.load(dir, opts.threads ?? 0)
    }
    case 'onnx':
      throw new Error('model.backend onnx is not available in this build')
  }
}
