import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { modelInit, modelPresets, parseSize } from '../../daemon/cli/model-init.js'
import { findPreset } from '../../daemon/model/offline/presets.js'
import { readCheckpointHeaders } from '../../daemon/model/safetensors-header.js'
import { capture, goldenCases, goldenDir, tempDir } from './helpers.js'

t.test('bad flags: one line on stderr, exit 2', async (t) => {
  const dir = await tempDir(t)
  const cases: [string[], RegExp][] = [
    [['--bogus'], /unknown argument "--bogus"/],
    [['--out', dir], /--config is required/],
    [['--config', 'tiny'], /--out is required/],
    [['--config', 'tiny', '--out'], /--out needs a value/],
    [['--config', 'tiny', '--out', '--seed'], /--out needs a value/],
    [['--config', 'tiny', '--out', dir, '--dtype', 'f16'], /--dtype must be f32 or bf16, got "f16"/],
    [['--config', 'tiny', '--out', dir, '--seed', '-1'], /--seed must be a non-negative integer/],
    [['--config', 'tiny', '--out', dir, '--seed', '1.5'], /--seed must be a non-negative integer/],
    [['--config', 'tiny', '--out', dir, '--shard-size', '2XB'], /--shard-size: cannot read "2XB"/],
    [['--config', 'no-such-preset', '--out', dir], /"no-such-preset" is neither a preset \(tiny, .*\) nor a file/],
    [['--config', 'tiny', '--config', 'small', '--out', dir], /--config given twice/],
    [['--config', 'tiny', '--out', dir, '--json'], /--json goes with --dry-run/],
  ]
  for (const [argv, re] of cases) {
    const r = await capture(() => modelInit(argv))
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.err, re)
    t.equal(r.err.trim().split('\n').length, 1, 'one line')
    t.equal(r.out, '')
  }
})

t.test('bad config file: location in the message, exit 2', async (t) => {
  const dir = await tempDir(t)
  const bad = join(dir, 'bad.json')
  await writeFile(bad, JSON.stringify({ ...findPreset('tiny')!.config, mb_per_layer: 3 }))
  let r = await capture(() => modelInit(['--config', bad, '--out', join(dir, 'o')]))
  t.equal(r.code, 2)
  t.match(r.err, `${bad}: the SambaY layout needs "mb_per_layer" 2`)
  await writeFile(bad, '{"model_type": ')
  r = await capture(() => modelInit(['--config', bad, '--dry-run']))
  t.equal(r.code, 2)
  t.match(r.err, `${bad}: not valid JSON`)
})

t.test('writes a checkpoint, refuses to overwrite it without --force, shards on request', async (t) => {
  const dir = await tempDir(t)
  const out = join(dir, 'ck')
  let r = await capture(() => modelInit(['--config', 'tiny', '--out', out, '--seed', '7']))
  t.equal(r.code, 0, r.err)
  t.match(r.out, /wrote .*: model\.safetensors, 116 tensors, 3\d\d,\d{3} parameters, f32, seed 7/)
  r = await capture(() => modelInit(['--config', 'tiny', '--out', out]))
  t.equal(r.code, 2)
  t.match(r.err, /already holds a checkpoint .*--force/)
  r = await capture(() => modelInit(['--config', 'tiny', '--out', out, '--force', '--shard-size=500KB', '--dtype', 'bf16']))
  t.equal(r.code, 0, r.err)
  t.match(r.out, /2 shards \+ model\.safetensors\.index\.json/)
  const h = await readCheckpointHeaders(out)
  t.equal(h.files.length, 2, 'the old single file was removed')
  t.equal(h.tensors.get('model.embed_tokens.weight')?.dtype, 'BF16')
})

const bf16Cases = goldenCases().filter((c) => c.includes('bf16'))

t.test('a checkpoint directory works as --config, and its torch_dtype is the default dtype', { skip: bf16Cases.length === 0 && `no bf16 golden case at ${goldenDir}` }, async (t) => {
  const dir = await tempDir(t)
  const r = await capture(() => modelInit(['--config', join(goldenDir, bf16Cases[0]!), '--out', dir]))
  t.equal(r.code, 0, r.err)
  t.match(r.out, /, bf16, seed 0,/)
})

t.test('--dry-run prints the estimate and writes nothing', async (t) => {
  const dir = await tempDir(t)
  let r = await capture(() => modelInit(['--config', 'phi4-mini-flash', '--dry-run', '--out', join(dir, 'x')]))
  t.equal(r.code, 0, r.err)
  t.match(r.out, 'parameters: 3,852,562,944 (3.853 B)')
  t.match(r.out, /9 Mamba .*8 sliding-window attention, 1 full attention, 7 GMU, 7 cross-attention/)
  t.match(r.out, /weights: f32 14\.35 GiB, bf16 7\.18 GiB/)
  // 9 Mamba layers × 5120·(3+16) floats + 8 SWA layers × 512·2·1280 floats; 2·1280 floats per token.
  t.match(r.out, /43\.4 MiB constant \+ 10\.0 KiB per token of context; 4K context 83\.4 MiB, 32K context 363\.4 MiB/)
  r = await capture(() => modelInit(['--config', 'phi4-mini-flash-attn', '--dry-run', '--json']))
  const j = JSON.parse(r.out)
  t.equal(j.stateBytesPerToken, 32 * 2 * 20 * 64 * 4, 'all-attention: K/V in every layer')
  t.equal(j.stateBytes32K, 32768 * 32 * 2 * 20 * 64 * 4)
  const { readdir } = await import('node:fs/promises')
  t.same(await readdir(dir), [], 'nothing written')
})

t.test('presets listing', async (t) => {
  const r = await capture(() => modelPresets([]))
  t.equal(r.code, 0)
  t.match(r.out, /^tiny\s+0\.4M/m)
  t.match(r.out, /^phi4-mini-flash\s+3852\.6M/m)
  const j = await capture(() => modelPresets(['--json']))
  t.ok(JSON.parse(j.out).some((p: { name: string; layout: string }) => p.name === 'large-attn' && p.layout === 'all-attention'))
  const bad = await capture(() => modelPresets(['--x']))
  t.equal(bad.code, 2)
})

t.test('size strings', async (t) => {
  t.equal(parseSize('2GB'), 2e9)
  t.equal(parseSize('500MB'), 5e8)
  t.equal(parseSize('1GiB'), 2 ** 30)
  t.equal(parseSize('1.5kb'), 1500)
  t.equal(parseSize('1048576'), 1048576)
  t.throws(() => parseSize('0'), /must be positive/)
})
