import t from 'tap'
import { validate, version } from 'uuid'
import { isoTime, verdictId } from '../../daemon/audit/record.js'

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
