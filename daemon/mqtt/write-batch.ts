// One socket write for a burst of inbound messages instead of one per message. mqtt.js hands the messages of a
// read to the handler one per tick, and each tick's packets (a verdict and its request's PUBACK) leave as their
// own write (mqtt-packet corks until the next tick, as does whole-packets.ts): a system call and a trip through
// the TCP stack each (on loopback, through the broker's receive path too), and fewer writes also mean fewer
// reads for the broker. While a burst is handled the socket stays corked, and it is flushed after `maxMessages`
// messages or once the burst is over (the next turn of the event loop), whichever comes first: a message that
// arrives alone goes out as before, and under load a reply waits at most for the handling of `maxMessages - 1`
// others.
import type { MqttClient } from 'mqtt'

interface Corkable {
  cork(): void
  uncork(): void
  readonly destroyed?: boolean
}

export class WriteBatch {
  private stream: Corkable | undefined
  private count = 0
  private readonly flushLater = () => this.flush()

  constructor(private readonly maxMessages: number) {
    if (!(maxMessages >= 1)) throw new RangeError(`maxMessages must be at least 1, got ${maxMessages}`)
  }

  /** Before a message of `client` is handled: its writes join the open batch, or open one. */
  begin(client: MqttClient): void {
    if (this.stream !== undefined) return
    const s = client.stream as unknown as Partial<Corkable> | undefined
    if (s === undefined || typeof s.cork !== 'function' || typeof s.uncork !== 'function' || s.destroyed === true) return
    s.cork()
    this.stream = s as Corkable
    this.count = 0
    setImmediate(this.flushLater)
  }

  /** After the message was handled (its verdict and PUBACK written, where they go out now). */
  end(): void {
    if (this.stream !== undefined && ++this.count >= this.maxMessages) this.flush()
  }

  /** Writes what the batch holds. */
  flush(): void {
    const s = this.stream
    if (s === undefined) return
    this.stream = undefined
    s.uncork()
  }

  /** Whether writes are being held now (for tests). */
  get open(): boolean {
    return this.stream !== undefined
  }
}
