// float32 <-> bfloat16 conversion. BF16 is the upper 16 bits of an IEEE float32; converting down
// rounds to nearest, ties to even, and keeps NaN a (quiet) NaN instead of rounding it to infinity.

export function f32ToBf16(src: Float32Array, dst: Uint16Array): void {
  if (dst.length < src.length) throw new RangeError('f32ToBf16: destination shorter than source')
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length)
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i]!
    if ((u & 0x7fffffff) > 0x7f800000) {
      dst[i] = (u >>> 16) | 0x40
    } else {
      // u + 0x7fff + lsb stays below 2^32 for every finite or infinite u, so the sum is exact.
      dst[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16
    }
  }
}

export function bf16ToF32(src: Uint16Array, dst: Float32Array): void {
  if (dst.length < src.length) throw new RangeError('bf16ToF32: destination shorter than source')
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, src.length)
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16
}
