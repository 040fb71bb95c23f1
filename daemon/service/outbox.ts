// Verdicts that could not be handed to the broker (connection down) wait here and go out in order on
// reconnect. The queue is a fixed ring: when it is full the oldest verdict is dropped and counted, so a long
// broker outage costs bounded memory (mqtt.js's own offline queue has no bound).
import type { IClientPublishOptions } from 'mqtt'

export interface OutboxItem {
  topic: string
  payload: string
  opts: IClientPublishOptions
  /** The dedupe key of the request this answers, if any. */
  key?: string
  /** Its row in the durable outbox (audit journal), if kept there. */
  durableSeq?: number
  /** Called with true when the item is dropped to make room (it will never be sent). */
  done?: (dropped: boolean) => void
}

export class Outbox {
  private readonly ring: (OutboxItem | undefined)[]
  private head = 0
  private count = 0
  /** Items dropped because the outbox was full, since start. */
  dropped = 0

  constructor(readonly capacity: number) {
    this.ring = new Array<OutboxItem | undefined>(Math.max(0, capacity))
  }

  get size(): number {
    return this.count
  }

  /** Queues an item; returns the item dropped to make room, if any. With capacity 0 the item itself is dropped. */
  push(item: OutboxItem): OutboxItem | undefined {
    if (this.capacity === 0) {
      this.dropped++
      item.done?.(true)
      return item
    }
    let evicted: OutboxItem | undefined
    if (this.count === this.capacity) {
      evicted = this.ring[this.head]
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % this.capacity
      this.count--
      this.dropped++
      evicted?.done?.(true)
    }
    this.ring[(this.head + this.count) % this.capacity] = item
    this.count++
    return evicted
  }

  /** Removes and returns the oldest item. */
  shift(): OutboxItem | undefined {
    if (this.count === 0) return undefined
    const item = this.ring[this.head]
    this.ring[this.head] = undefined
    this.head = (this.head + 1) % this.capacity
    this.count--
    return item
  }

  /**
   * Sends everything queued, oldest first, while `canSend()` holds. Items are shifted before sending, so an
   * item queued again by `send` (connection lost mid-flush) goes to the back without being sent twice here.
   */
  flush(canSend: () => boolean, send: (item: OutboxItem) => void): number {
    let n = 0
    const todo = this.count
    while (n < todo && canSend()) {
      const item = this.shift()
      if (!item) break
      send(item)
      n++
    }
    return n
  }
}
