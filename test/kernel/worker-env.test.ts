// The addon in more than one environment: a worker thread loads it (the audit journal's ingest worker does, for
// SCHED_IDLE) while the main thread holds a model. Each environment keeps its own class constructors: the main
// thread's model and states go on working, with the same logits, after the worker has used the addon and exited.
// schedIdle() moves only the calling thread to SCHED_IDLE.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import t from 'tap'
import { Model } from '../../daemon/model/kernel.js'
import { schedOf } from '../../harness/proc.js'
import { writeCheckpoint, type TinyConfig } from './helpers/checkpoint.js'

const root = mkdtempSync(join(tmpdir(), 'fc-kernel-worker-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))
const cfg: TinyConfig = { hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 96, vocab_size: 96, sliding_window: 6 }
const dir = join(root, 'm')
writeCheckpoint(dir, cfg, { seed: 11 })
const tokens = [5, 17, 3, 88, 41, 9, 60, 2]

t.test('a worker thread loads and uses the addon; the main thread\'s model is unaffected', async (t) => {
  const model = Model.load(dir, { threads: 2 })
  t.teardown(() => model.dispose())
  const before = Array.from(model.prefill(model.newState(), tokens))

  const w = new Worker(new URL(`./helpers/addon-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url), { workerData: { dir, tokens } })
  const got = await new Promise<{ logits: number[]; idle: number; policy: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject) })
  await new Promise((r) => w.once('exit', r))
  t.same(got.logits, before, 'the worker\'s own model gives the same logits')
  if (process.platform === 'linux') {
    t.equal(got.idle, 0, 'schedIdle() succeeded')
    t.equal(got.policy, 5, 'the worker thread is under SCHED_IDLE')
    t.equal(schedOf('/proc/self/stat').policy, 0, 'the main thread is not')
  }

  // After the worker's environment is gone: new states and clones are made with the main thread's classes.
  const s = model.newState()
  const c = s.clone()
  t.same(Array.from(model.prefill(c, tokens)), before, 'a clone made after the worker exited gives the same logits')
  t.same(Array.from(model.prefill(s, tokens)), before, 'and so does a new state')
  s.dispose()
  c.dispose()
})
