// Prefill A/B of two builds of the native addon in one process: the same checkpoint loaded through each,
// prefills alternated (A B, B A, ...) so that both see the same machine load. Reports wall time and the
// process's CPU time per prefill; on a shared machine the CPU time of a 1-thread run is the steadier figure
// (wall time also counts the time the thread waited for a core).
//
//   node dist/bench/kernel/ab.js --a OLD.node --b NEW.node --checkpoint DIR [--tokens 512] [--reps 8]
//        [--threads 1]
// Build the baseline addon from another checkout (`npx node-gyp rebuild --directory=native` there) and copy
// native/build/Release/flashcheck_kernel.node aside; FLASHCHECK_ISA picks the ISA for both.
import { createRequire } from 'node:module'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { posInt } from './args.js'
import { summarize } from './stats.js'

interface NativeModel {
  config(): { vocab_size: number; isa: string; weight_dtype: string; param_count: number }
  newState(): unknown
  forward(state: unknown, tokens: Int32Array, rows: boolean | number): Float32Array
  dispose(): void
}
interface Addon {
  load(dir: string, threads: number, nice: number): NativeModel
}

const USAGE = 'usage: node dist/bench/kernel/ab.js --a OLD.node --b NEW.node --checkpoint DIR [--tokens 512] [--reps 8] [--threads 1]'

function main(): number {
  const { values } = parseArgs({
    options: {
      a: { type: 'string' }, b: { type: 'string' }, checkpoint: { type: 'string' },
      tokens: { type: 'string' }, reps: { type: 'string' }, threads: { type: 'string' }, help: { type: 'boolean' },
    },
  })
  if (values.help || !values.a || !values.b || !values.checkpoint) {
    process.stderr.write(USAGE + '\n')
    return values.help ? 0 : 2
  }
  const T = posInt(values.tokens, 'tokens', 512)
  const reps = posInt(values.reps, 'reps', 8)
  const threads = posInt(values.threads, 'threads', 1)
  const require = createRequire(import.meta.url)
  // two files, two dlopen handles: each build keeps its own statics (kernel dispatch, thread pools)
  const builds = [values.a, values.b].map((p) => resolve(p))
  const models = builds.map((p) => (require(p) as Addon).load(values.checkpoint!, threads, 0))
  const cfg = models[0]!.config()
  const toks = Int32Array.from({ length: T }, (_, i) => (i * 7919 + 13) % cfg.vocab_size)
  const wall: number[][] = [[], []]
  const cpu: number[][] = [[], []]
  for (const m of models) m.forward(m.newState(), toks, false) // warm-up: page in weights, fill the arenas
  for (let r = 0; r < reps; r++) {
    for (const i of r % 2 ? [1, 0] : [0, 1]) {
      const m = models[i]!
      const s = m.newState()
      const c0 = process.cpuUsage()
      const t0 = process.hrtime.bigint()
      m.forward(s, toks, false)
      wall[i]!.push(Number(process.hrtime.bigint() - t0) / 1e6)
      const c = process.cpuUsage(c0)
      cpu[i]!.push((c.user + c.system) / 1e3)
    }
  }
  const fmt = (x: number) => x.toFixed(1)
  console.log(`checkpoint ${values.checkpoint}: ${(cfg.param_count / 1e6).toFixed(1)}M parameters, ${cfg.weight_dtype}; isa ${cfg.isa}; ${threads} thread(s); prefill ${T} tokens x ${reps} per build, alternated`)
  const w = wall.map((x) => summarize(x))
  const c = cpu.map((x) => summarize(x))
  for (const i of [0, 1]) {
    console.log(`  ${i ? 'B' : 'A'} ${builds[i]}: wall median ${fmt(w[i]!.median)} ms (${fmt((T / w[i]!.median) * 1e3)} tok/s, p99 ${fmt(w[i]!.p99)}), cpu median ${fmt(c[i]!.median)} ms (${fmt((T / c[i]!.median) * 1e3)} tok/cpu-s)`)
  }
  console.log(`B vs A (baseline A): wall ${(w[0]!.median / w[1]!.median).toFixed(2)}x, cpu ${(c[0]!.median / c[1]!.median).toFixed(2)}x faster`)
  for (const m of models) m.dispose()
  return 0
}

process.exitCode = main()
