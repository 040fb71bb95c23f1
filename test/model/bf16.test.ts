import t from 'tap'
import { bf16ToF32, f32ToBf16 } from '../../daemon/model/offline/bf16.js'

function fromBits(bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer)
}

function toBf16(bits: number[]): number[] {
  const out = new Uint16Array(bits.length)
  f32ToBf16(fromBits(bits), out)
  return [...out]
}

t.test('rounds to nearest, ties to even', async (t) => {
  t.same(toBf16([0x3f800000]), [0x3f80], '1.0 exact')
  t.same(toBf16([0x3f807fff]), [0x3f80], 'just below half rounds down')
  t.same(toBf16([0x3f808000]), [0x3f80], 'tie with even lower half stays')
  t.same(toBf16([0x3f818000]), [0x3f82], 'tie with odd lower half rounds up to even')
  t.same(toBf16([0x3f808001]), [0x3f81], 'just above half rounds up')
  t.same(toBf16([0xbf818000]), [0xbf82], 'negative tie')
  t.same(toBf16([0x3fffffff]), [0x4000], 'carry into the exponent')
  t.same(toBf16([0x00008000, 0x00018000]), [0x0000, 0x0002], 'subnormal ties')
})

t.test('infinities, overflow and NaN', async (t) => {
  t.same(toBf16([0x7f800000, 0xff800000]), [0x7f80, 0xff80], 'infinities stay')
  t.same(toBf16([0x7f7fffff]), [0x7f80], 'max float rounds to +inf')
  t.same(toBf16([0x7f7f7fff]), [0x7f7f], 'below the overflow tie stays finite')
  const nan = toBf16([0x7f800001, 0xffc00000, 0x7fffffff])
  for (const n of nan) t.ok((n & 0x7f80) === 0x7f80 && (n & 0x7f) !== 0, `0x${n.toString(16)} is a NaN`)
})

t.test('bf16 -> f32 is exact and round-trips', async (t) => {
  const src = new Uint16Array([0x3f80, 0xc040, 0x0001, 0x7f80, 0x8000])
  const f = new Float32Array(src.length)
  bf16ToF32(src, f)
  t.same([...f.subarray(0, 2)], [1, -3])
  t.equal(f[2], 2 ** -133, 'smallest bf16 subnormal')
  t.equal(f[3], Infinity)
  t.ok(Object.is(f[4], -0))
  const back = new Uint16Array(src.length)
  f32ToBf16(f, back)
  t.same([...back], [...src])
})

t.test('rejects a short destination', async (t) => {
  t.throws(() => f32ToBf16(new Float32Array(3), new Uint16Array(2)), RangeError)
})
