// WriteBatch against a real Node Writable (whose cork/uncork hands every buffered chunk to one _writev call)
// and mqtt-packet's own writeToStream, which corks and uncorks around each packet itself.
import t from 'tap'
import { Writable } from 'node:stream'
import { setImmediate as turn } from 'node:timers/promises'
import mqttPacket from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { WriteBatch } from '../../daemon/mqtt/write-batch.js'

/** A stream that records each write the way a socket makes it: the chunks of one system call together. */
function recorder(): { stream: Writable; calls: string[][] } {
  const calls: string[][] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      calls.push([chunk.toString('latin1')])
      cb()
    },
    writev(chunks, cb) {
      calls.push(chunks.map((c) => (c.chunk as Buffer).toString('latin1')))
      cb()
    },
  })
  return { stream, calls }
}

/** The verdicts each write carried (mqtt-packet writes a packet as several chunks). */
const verdicts = (calls: string[][]) => calls.map((c) => c.join('').match(/v\d+/g) ?? [])
const pubacks = (call: string[]) => call.join('').split('\x40\x02').length - 1

const clientOf = (stream: unknown) => ({ stream }) as unknown as MqttClient

/** What the daemon writes for one request: its verdict, then its PUBACK (as mqtt.js does, each corked to the next tick). */
function answer(stream: Writable, i: number): void {
  mqttPacket.writeToStream({ cmd: 'publish', topic: 'r', payload: `v${i}`, qos: 1, messageId: i + 1, dup: false, retain: false }, stream)
  mqttPacket.writeToStream({ cmd: 'puback', messageId: i + 1 }, stream)
}

t.test('a burst shares one write per maxMessages messages; the rest goes out on the next turn', async (t) => {
  const { stream, calls } = recorder()
  const batch = new WriteBatch(4)
  const client = clientOf(stream)
  for (let i = 0; i < 10; i++) {
    batch.begin(client)
    answer(stream, i)
    batch.end()
    // mqtt.js hands over the next message of a read on the next tick.
    await new Promise<void>((r) => process.nextTick(r))
  }
  t.same(verdicts(calls), [['v0', 'v1', 'v2', 'v3'], ['v4', 'v5', 'v6', 'v7']], 'messages 1-4 and 5-8 went out as two writes, at once')
  t.same(calls.map(pubacks), [4, 4], 'each with its requests\' PUBACKs')
  t.equal(batch.open, true, 'the last two wait for the end of the burst')
  await turn()
  t.same(verdicts(calls), [['v0', 'v1', 'v2', 'v3'], ['v4', 'v5', 'v6', 'v7'], ['v8', 'v9']], 'then the last two in one write')
  t.same(calls.map(pubacks), [4, 4, 2])
  t.equal(batch.open, false)
})

t.test('a message that arrives alone is written on the next turn, as one write', async (t) => {
  const { stream, calls } = recorder()
  const batch = new WriteBatch(8)
  batch.begin(clientOf(stream))
  answer(stream, 0)
  batch.end()
  await new Promise<void>((r) => process.nextTick(r))
  t.equal(calls.length, 0, 'held through the ticks of the burst')
  await turn()
  t.same(verdicts(calls), [['v0']], 'verdict and PUBACK in one write')
  t.same(calls.map(pubacks), [1])
})

t.test('maxMessages 1 leaves each message to its own write, on the next tick as without a batch', async (t) => {
  const { stream, calls } = recorder()
  const batch = new WriteBatch(1)
  batch.begin(clientOf(stream))
  answer(stream, 0)
  batch.end()
  t.equal(batch.open, false, 'closed at end()')
  await new Promise<void>((r) => process.nextTick(r))
  t.same(verdicts(calls), [['v0']], 'written on the next tick')
  answer(stream, 1) // a model verdict settled later: mqtt-packet's own cork, flushed on the next tick
  await new Promise<void>((r) => process.nextTick(r))
  t.same(verdicts(calls), [['v0'], ['v1']])
  t.throws(() => new WriteBatch(0), /at least 1/)
})

t.test('no stream, a destroyed stream, or one that cannot cork: nothing is held', async (t) => {
  const batch = new WriteBatch(8)
  batch.begin(clientOf(undefined))
  t.equal(batch.open, false)
  batch.begin(clientOf({ write() {} }))
  t.equal(batch.open, false)
  const { stream } = recorder()
  stream.destroy()
  batch.begin(clientOf(stream))
  t.equal(batch.open, false)
  batch.end()
  batch.flush()
})
