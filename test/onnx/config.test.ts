// model.onnx.* configuration keys: defaults, environment and flag forms, validation.
import t from 'tap'
import { loadConfig } from '../../daemon/config/load.js'
import { backendOptions } from '../../daemon/model/load-backend.js'

t.test('defaults: CPU provider, graphs exported at start, bundled runtime, no TensorRT options', async (t) => {
  const c = loadConfig({ env: {}, args: [] })
  t.same(c.model.onnx, { providers: ['cpu'], graphs: '', runtimePath: '', trtEngineCachePath: '', trtFp16: false, trtMaxWorkspaceBytes: 0 })
})

t.test('environment and flags', async (t) => {
  const c = loadConfig({
    env: { FLASHCHECK_MODEL_ONNX_PROVIDERS: 'tensorrt, cuda,cpu', FLASHCHECK_MODEL_ONNX_TRT_FP16: 'true' },
    args: ['--model-backend', 'onnx', '--model-onnx-trt-engine-cache-path', '/var/lib/flashcheck/trt-cache', '--model-onnx-graphs', '/var/lib/flashcheck/onnx', '--model-onnx-runtime-path', '/opt/ort/onnxruntime-node', '--model-threads', '3'],
  })
  t.equal(c.model.backend, 'onnx')
  t.same(c.model.onnx.providers, ['tensorrt', 'cuda', 'cpu'])
  t.equal(c.model.onnx.trtFp16, true)
  t.equal(c.model.onnx.trtEngineCachePath, '/var/lib/flashcheck/trt-cache')
  const o = backendOptions(c.model)
  t.equal(o.threads, 3)
  t.same(o.onnx?.providers, ['tensorrt', 'cuda', 'cpu'])
  t.equal(o.onnx?.graphs, '/var/lib/flashcheck/onnx')
  t.equal(o.onnx?.runtime, '/opt/ort/onnxruntime-node')
  t.same(o.onnx?.trt, { engineCachePath: '/var/lib/flashcheck/trt-cache', fp16: true, maxWorkspaceSize: 0 })
})

t.test('invalid provider lists are refused', async (t) => {
  for (const [v, msg] of [['gpu', /unknown provider "gpu"/], ['cpu,cpu', /twice/], ['', /non-empty/]] as const) {
    t.throws(() => loadConfig({ env: { FLASHCHECK_MODEL_ONNX_PROVIDERS: v }, args: [] }), msg, JSON.stringify(v))
  }
  t.throws(() => loadConfig({ env: { FLASHCHECK_MODEL_ONNX_TRT_MAX_WORKSPACE_BYTES: '-5' }, args: [] }))
})
