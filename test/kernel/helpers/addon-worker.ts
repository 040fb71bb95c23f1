// Runs in a worker thread (test/kernel/worker-env.test.ts): loads the addon in this thread's environment, uses
// its classes here, moves this thread to SCHED_IDLE, and reports.
import { parentPort, workerData } from 'node:worker_threads'
import { loadAddon } from '../../../daemon/model/addon.js'
import { Model } from '../../../daemon/model/kernel.js'
import { schedOf } from '../../../harness/proc.js'

const { dir, tokens } = workerData as { dir: string; tokens: number[] }
const model = Model.load(dir, { threads: 1 })
const s = model.newState()
const logits = Array.from(model.prefill(s.clone(), tokens))
s.dispose()
model.dispose()
const idle = loadAddon<{ schedIdle(): number }>().schedIdle()
parentPort!.postMessage({ logits, idle, policy: schedOf('/proc/thread-self/stat').policy })
