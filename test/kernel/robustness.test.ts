// Failure paths of the kernel: an exception in a compute worker (injected with FLASHCHECK_KERNEL_FAULT) is a
// rejected call, not a dead process; the state it left half-advanced is refused (E_STATE_POISONED) while the
// model, other states and clones taken before keep giving exact logits. position/lastMs read while an async
// call runs show the state before or after the call, never in between.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { KernelError } from '../../daemon/model/backend.js'
import { Model } from '../../daemon/model/kernel.js'
import { rng, writeCheckpoint, type TinyConfig } from './helpers/checkpoint.js'

const root = mkdtempSync(join(tmpdir(), 'fc-kernel-robust-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const cfg: TinyConfig = { hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 96, vocab_size: 96, sliding_window: 6 }
const dir = join(root, 'sambay')
writeCheckpoint(dir, cfg, { seed: 5 })
const V = 96

const toks = (n: number, seed: number) => {
  const r = rng(seed)
  return Array.from({ length: n }, () => Math.floor(r() * V))
}
const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]))

/** A model whose `call`-th forward call fails in a pool worker (the hook is read at load). */
function faultyModel(call: number): Model {
  process.env.FLASHCHECK_KERNEL_FAULT = `worker:${call}`
  try {
    return Model.load(dir, { threads: 2 })
  } finally {
    delete process.env.FLASHCHECK_KERNEL_FAULT
  }
}

async function code(t: Test, p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    if (typeof p === 'function') p()
    else await p
  } catch (err) {
    t.ok(err instanceof KernelError, `KernelError: ${(err as Error).message}`)
    return (err as KernelError).code
  }
  return undefined
}

const prompt = toks(30, 1)
const long = toks(300, 2) // two chunks: 256 + 44
const next = toks(4, 3)

// the same calls on a model without the hook
const ref = Model.load(dir, { threads: 2 })
t.teardown(() => ref.dispose())
const r0 = ref.newState()
const refPrompt = ref.prefill(r0, prompt)
const refNext = next.map((tk) => ref.step(r0, tk))
const refLong = ref.prefill(ref.newState(), long)

t.test('a worker exception in an async call: rejected, state poisoned, model and earlier clones fine', async (t) => {
  const m = faultyModel(2)
  t.teardown(() => m.dispose())
  const s = m.newState()
  t.ok(same(await m.prefillAsync(s, prompt), refPrompt), 'call 1 (before the fault) is exact')
  const snap = s.clone()
  t.equal(await code(t, m.prefillAsync(s, long)), 'E_KERNEL', 'call 2 rejects with E_KERNEL')
  t.equal(s.position, 30, 'position stays at the last completed call')
  t.equal(await code(t, m.prefillAsync(s, next)), 'E_STATE_POISONED', 'async use of the poisoned state')
  t.equal(await code(t, () => m.step(s, 1)), 'E_STATE_POISONED', 'sync use of the poisoned state')
  t.equal(await code(t, () => s.clone()), 'E_STATE_POISONED', 'clone of the poisoned state')
  let msg = ''
  try {
    m.step(s, 1)
  } catch (err) {
    msg = (err as Error).message
  }
  t.match(msg, /failed part-way \(injected fault in a compute worker/, 'the message names the first failure')
  s.dispose()
  // the clone taken before shares K/V pages with the failed state: copy-on-write kept them intact
  t.ok(next.every((tk, i) => same(m.step(snap, tk), refNext[i])), 'the clone taken before continues exactly')
  t.ok(same(await m.prefillAsync(m.newState(), long), refLong), 'a new state on the same model is exact')
})

t.test('a worker exception in a sync call throws and poisons the state', async (t) => {
  const m = faultyModel(1)
  t.teardown(() => m.dispose())
  const s = m.newState()
  t.equal(await code(t, () => m.prefill(s, long)), 'E_KERNEL')
  t.equal(s.position, 0)
  t.equal(await code(t, () => m.prefill(s, prompt)), 'E_STATE_POISONED')
  const s2 = m.newState()
  t.ok(same(m.prefill(s2, prompt), refPrompt), 'the model keeps working')
  t.equal(s2.position, 30)
})

t.test('argument errors are checked before the state changes: the state stays usable', async (t) => {
  const s = ref.newState()
  t.equal(await code(t, () => ref.prefill(s, [1, V + 5])), 'E_INVALID_ARGUMENT')
  t.ok(same(ref.prefill(s, prompt), refPrompt))
})

t.test('position and lastMs read while an async call runs: before or after the call, never in between', async (t) => {
  const m = Model.load(dir, { threads: 2 })
  t.teardown(() => m.dispose())
  const s = m.newState()
  await m.prefillAsync(s, prompt)
  const ms0 = s.lastMs
  t.ok(ms0 > 0)
  const big = toks(700, 4) // three chunks (256 + 256 + 188): position used to move chunk by chunk
  for (let round = 0; round < 3; round++) {
    const before = s.position
    let settled = false
    const p = m.prefillAsync(s, big).finally(() => {
      settled = true
    })
    const positions = new Set<number>()
    const lastMs = new Set<number>()
    let reads = 0
    const msBefore = s.lastMs
    while (!settled) {
      for (let i = 0; i < 200; i++) {
        positions.add(s.position)
        lastMs.add(s.lastMs)
        reads++
      }
      await new Promise((r) => setImmediate(r))
    }
    await p
    const after = s.position
    t.equal(after, before + big.length)
    t.ok(reads > 200, `${reads} reads during the call`)
    t.ok([...positions].every((x) => x === before || x === after), `positions seen: ${[...positions].join(', ')}`)
    t.ok([...lastMs].every((x) => x === msBefore || x === s.lastMs), `lastMs values seen: ${lastMs.size}`)
  }
})
