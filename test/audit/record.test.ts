import t from 'tap'
import { randomBytes } from 'node:crypto'
import { v7, validate, version } from 'uuid'
import { isoTime, uuidV7, verdictId } from '../../daemon/audit/record.js'

t.test('isoTime equals Date#toISOString, across seconds, before 1970 and past 9999', async (t) => {
  const base = Date.UTC(2026, 11, 2, 1, 59, 59, 990)
  let bad = 0
  for (let i = 0; i < 5000; i++) {
    const ms = base + i * 7
    if (isoTime(ms) !== new Date(ms).toISOString()) bad++
  }
  t.equal(bad, 0, '5000 consecutive stamps across second, minute and hour boundaries')
  for (const ms of [0, 1, 999, 1000, -1, -999, -1000, -1001, Date.UTC(1969, 11, 31, 23, 59, 59, 5), 253402300800000, 1.7e12 + 0.6]) {
    t.equal(isoTime(ms), new Date(Math.floor(ms)).toISOString(), `at ${ms}`)
  }
  // Going back in time (a replayed clock) must not reuse the later second's prefix.
  t.equal(isoTime(base + 1000), new Date(base + 1000).toISOString())
  t.equal(isoTime(base), new Date(base).toISOString())
})

t.test('verdictId: valid UUIDv7s that sort like their times, unique within a millisecond', async (t) => {
  const ms = Date.UTC(2026, 11, 2)
  const ids = Array.from({ length: 600 }, (_, i) => verdictId(ms + Math.floor(i / 200)))
  t.ok(ids.every((id) => validate(id) && version(id) === 7), 'every id is a valid version-7 UUID')
  t.equal(new Set(ids).size, ids.length, 'no two alike (the random pool refills every 256 ids)')
  t.same([...ids].sort(), ids, 'ids made in order sort in that order')
  t.equal(parseInt(ids[0]!.replace(/-/g, '').slice(0, 12), 16), ms, 'the time part is the inspection start')
})

t.test('uuidV7 writes the UUID that the uuid package makes from the same time, counter and random bytes', async (t) => {
  const random = randomBytes(4096)
  let bad = 0
  let n = 0
  const times = [0, 1, 255, 256, 0xffffffff, 2 ** 32, Date.UTC(2026, 11, 4), 2 ** 48 - 1]
  for (let i = 0; i < 2000; i++) times.push(Math.floor(Math.random() * 2 ** 48))
  for (const ms of times) {
    // Twice per millisecond and then the next one: the time part is written once per millisecond.
    for (const at of [ms, ms, ms + 1, ms]) {
      if (at >= 2 ** 48) continue
      const seq = randomBytes(4).readInt32LE(0)
      const off = (n++ * 16) % (random.length - 16)
      const want = v7({ msecs: at, seq, random: random.subarray(off, off + 16) })
      if (uuidV7(at, seq, random, off) !== want) {
        if (bad++ < 3) t.equal(uuidV7(at, seq, random, off), want, `msecs ${at}, seq ${seq}`)
      }
    }
  }
  t.equal(bad, 0, `${n} ids, counters of any sign, times from 0 to 2^48 - 1`)
})
