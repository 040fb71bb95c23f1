// Runs in a worker thread (test/kernel/worker-env.test.ts): loads the addon in this thread's environment, uses
// its classes here, moves this thread to SCHED_IDLE, and reports.
import { readFileSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import { loadAddon } from '../../../daemon/model/addon.js'
import { Model } from '../../../daemon/model/kernel.js'

const { dir, tokens } = workerData as { dir: string; tokens: number[] }
const model = Model.load(dir, { threads: 1 })
const s = model.newState()
const logits = Array.from(model.prefill(s.clone(), tokens))
s.dispose()
model.dispose()
const idle = loadAddon<{ schedIdle(): number }>().schedIdle()
const stat = readFileSync('/proc/thread-self/stat', 'utf8')
const policy = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3])
parentPort!.postMessage({ logits, idle, policy })
