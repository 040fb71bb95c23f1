import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { readCheckpointHeaders, readFileHeader } from '../../daemon/model/safetensors-header.js'
import { buildHeader, planShards, type TensorSource, writeSafetensors, writeWeights } from '../../daemon/model/offline/safetensors-write.js'
import { asF32, asU16, tempDir, tensorBytes } from './helpers.js'

/** A tensor whose element i is start + i. */
function ramp(name: string, dtype: 'F32' | 'BF16', shape: number[], start = 0): TensorSource {
  return {
    name, dtype, shape,
    open: () => {
      let k = start
      return (out) => {
        for (let i = 0; i < out.length; i++) out[i] = k++
      }
    },
  }
}

t.test('header: length prefix, space padding to 8, contiguous offsets', async (t) => {
  for (const name of ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh']) {
    const h = buildHeader([{ name, dtype: 'F32', shape: [3] }, { name: 'z', dtype: 'BF16', shape: [2, 5] }])
    const len = Number(h.bytes.readBigUInt64LE(0))
    t.equal(len % 8, 0, `${name}: header length multiple of 8`)
    t.equal(h.bytes.length, 8 + len)
    const json = h.bytes.subarray(8).toString('utf8')
    t.match(json, /^\{.*\} *$/, 'JSON then only spaces')
    const parsed = JSON.parse(json)
    t.same(parsed.__metadata__, { format: 'pt' })
    t.same(parsed[name], { dtype: 'F32', shape: [3], data_offsets: [0, 12] })
    t.same(parsed.z, { dtype: 'BF16', shape: [2, 5], data_offsets: [12, 32] })
    t.equal(h.dataBytes, 32)
  }
  t.throws(() => buildHeader([{ name: 'x', dtype: 'F32', shape: [1] }, { name: 'x', dtype: 'F32', shape: [1] }]), /duplicate/)
})

t.test('writes data little-endian, converting BF16, across chunk boundaries', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'x.safetensors')
  // 1.5M elements crosses the writer's 1M-element chunk.
  const big = 1536 * 1024
  const size = await writeSafetensors(path, [ramp('a', 'F32', [big]), ramp('b', 'BF16', [4, 3], 250), ramp('c', 'F32', [2])])
  t.equal((await stat(path)).size, size)
  const h = await readFileHeader(path)
  t.same(h.tensors.map((e) => [e.name, e.begin, e.end]), [['a', 0, big * 4], ['b', big * 4, big * 4 + 24], ['c', big * 4 + 24, big * 4 + 32]])
  const raw = await readFile(path)
  const a = asF32(raw.subarray(h.dataStart, h.dataStart + big * 4))
  t.equal(a[0], 0)
  t.equal(a[1048575], 1048575)
  t.equal(a[1048576], 1048576, 'first element of the second chunk')
  t.equal(a[big - 1], big - 1)
  // 250..261: exact up to 256, then bf16 steps by 2 and odd values are ties that go to the even mantissa.
  const b = asU16(raw.subarray(h.dataStart + big * 4, h.dataStart + big * 4 + 24))
  const f = new Float32Array(new Uint32Array([...b].map((x) => x << 16)).buffer)
  t.same([...f], [250, 251, 252, 253, 254, 255, 256, 256, 258, 260, 260, 260])
})

t.test('header reader rejects broken files', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'x.safetensors')
  await writeSafetensors(path, [ramp('a', 'F32', [4])])
  const good = await readFile(path)
  const { writeFile } = await import('node:fs/promises')
  await writeFile(path, good.subarray(0, good.length - 4))
  await t.rejects(readFileHeader(path), /data section is 16 bytes but the file holds 12/)
  const hugeLen = Buffer.from(good)
  hugeLen.writeBigUInt64LE(BigInt(1e6), 0)
  await writeFile(path, hugeLen)
  await t.rejects(readFileHeader(path), /header length 1000000 does not fit/)
})

t.test('shard planning follows the Hugging Face rule', async (t) => {
  const ts = [4, 4, 4, 20, 4].map((n, i) => ({ name: `t${i}`, dtype: 'F32' as const, shape: [n] }))
  // bytes: 16, 16, 16, 80, 16 with a 40-byte limit
  t.same(planShards(ts, 40).map((s) => s.map((x) => x.name)), [['t0', 't1'], ['t2'], ['t3'], ['t4']])
  t.same(planShards(ts, 1000).length, 1)
  t.same(planShards([], 10), [[]], 'an empty checkpoint is still one file')
})

t.test('sharded checkpoint: index matches shards, sizes, and the single-file data', async (t) => {
  const dir = await tempDir(t)
  const single = join(dir, 'single')
  const sharded = join(dir, 'sharded')
  const { mkdir } = await import('node:fs/promises')
  await mkdir(single)
  await mkdir(sharded)
  const tensors = [ramp('w.a', 'F32', [10, 10]), ramp('w.b', 'BF16', [64], 7), ramp('w.c', 'F32', [300], 1), ramp('w.d', 'F32', [5])]
  const one = await writeWeights(single, tensors, 1e9)
  t.same(one.files, ['model.safetensors'])
  const many = await writeWeights(sharded, tensors, 600)
  t.same(many.files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'])
  t.equal(many.totalSize, 400 + 128 + 1200 + 20)
  const index = JSON.parse(await readFile(join(sharded, 'model.safetensors.index.json'), 'utf8'))
  t.same(index.metadata, { total_size: 1748 })
  t.same(index.weight_map, {
    'w.a': 'model-00001-of-00003.safetensors',
    'w.b': 'model-00001-of-00003.safetensors',
    'w.c': 'model-00002-of-00003.safetensors',
    'w.d': 'model-00003-of-00003.safetensors',
  })
  const hs = await readCheckpointHeaders(sharded)
  const h1 = await readCheckpointHeaders(single)
  t.equal(hs.dataBytes, 1748)
  for (const f of hs.files) t.ok(f.tensors.reduce((n, e) => n + e.end - e.begin, 0) <= 1200, `${f.path} within the limit or one tensor`)
  for (const name of ['w.a', 'w.b', 'w.c', 'w.d']) {
    t.same(await tensorBytes(sharded, hs, name), await tensorBytes(single, h1, name), `${name} bytes equal`)
  }
})

t.test('checkpoint reader catches an index that disagrees with the shards', async (t) => {
  const dir = await tempDir(t)
  await writeWeights(dir, [ramp('a', 'F32', [100]), ramp('b', 'F32', [100])], 500)
  const p = join(dir, 'model.safetensors.index.json')
  const index = JSON.parse(await readFile(p, 'utf8'))
  const { writeFile } = await import('node:fs/promises')
  await writeFile(p, JSON.stringify({ ...index, metadata: { total_size: 1 } }))
  await t.rejects(readCheckpointHeaders(dir), /metadata.total_size 1 but the shards hold 800/)
  await writeFile(p, JSON.stringify({ ...index, weight_map: { ...index.weight_map, a: index.weight_map.b } }))
  await t.rejects(readCheckpointHeaders(dir), /weight_map says a is in model-00002-of-00002.safetensors/)
})
