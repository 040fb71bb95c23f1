// The one place that bends mqtt.js's acknowledgement of inbound messages, for MQTT 3.1.1 and 5 alike: every
// message is handled before its PUBACK goes out, and the PUBACK of a QoS 1 request whose verdict goes out
// later (after its audit row is written, or after the model step) waits for that verdict, so that a daemon
// that dies meanwhile gets the request redelivered instead of losing it.
//
// The hook is mqtt.js's documented `client.handleMessage(packet, callback)`: the client calls it for each
// message (QoS 0 and 1 on PUBLISH, QoS 2 on PUBREL) and sends the PUBACK/PUBCOMP when `callback()` is called.
// It also reads no further packet until then (one message at a time), so holding `callback` until a verdict is
// out would stall the inbound stream behind every journal write. Instead the handler returns at once:
// `callback(DEFER)` makes mqtt.js skip its own PUBACK and go on with the next packet (an error given to the
// callback is passed to its packet loop, which ignores it; nothing is emitted), and the withheld PUBACK goes
// out later through the client's private `_sendPacket`, on the same connection only. Both stay inside this
// module. (`customHandleAcks`, the other hook, exists for MQTT 5 only and reports each deferral as an 'error'.)
//
// The handler reads the topic from the packet: the daemon advertises no topic alias maximum, so the broker
// never sends an alias in its place (install refuses a client that would accept them).
import type { IPublishPacket, MqttClient } from 'mqtt'
import { WriteBatch } from '../mqtt/write-batch.js'

/** The PUBACK of one inbound message, withheld until every verdict it started has been handed to the broker. */
export class HeldAck {
  private open = 0
  private onSettled?: () => void

  /** One more verdict to wait for; call the returned function (idempotent) once it is handed to the broker. */
  hold(): () => void {
    this.open++
    let released = false
    return () => {
      if (released) return
      released = true
      if (--this.open === 0) this.onSettled?.()
    }
  }

  get settled(): boolean {
    return this.open === 0
  }

  /** Runs `fn` when the last held verdict is released. */
  whenSettled(fn: () => void): void {
    this.onSettled = fn
  }
}

/** Handles one inbound message; returns its HeldAck when part of the answer goes out later. */
export type InboundHandler = (topic: string, payload: Buffer, packet: IPublishPacket) => HeldAck | undefined

/** Messages whose writes may share one socket write: a reply waits for the handling of at most 7 others. */
const BATCH_MESSAGES = 8

/** Given to mqtt.js's callback: skip the PUBACK of this message (it is sent later) and read the next packet. */
const DEFER = new Error('PUBACK deferred until the verdict is published')

type PrivateSend = { _sendPacket(p: object, cb?: () => void, cbStorePut?: () => void, noStore?: boolean): void }

export class AckHook {
  /** Counts closed connections, so that a PUBACK withheld on one connection is not sent on the next. */
  private gen = 0
  /** PUBACKs withheld now (for tests and diagnostics). */
  private waiting = 0
  /** The verdicts and PUBACKs of a burst of messages leave in one socket write. */
  private readonly batch = new WriteBatch(BATCH_MESSAGES)

  constructor(private readonly client: () => MqttClient | undefined) {}

  /** Routes every message of `client` through `handle` before it is acknowledged. Call before it connects. */
  install(client: MqttClient, handle: InboundHandler): void {
    if (client.options.properties?.topicAliasMaximum) throw new Error('AckHook reads the topic from the packet: topic aliases must stay off')
    const batch = this.batch
    client.handleMessage = (packet, callback) => {
      batch.begin(client)
      let held: HeldAck | undefined
      try {
        held = handle(packet.topic, packet.payload as Buffer, packet)
      } finally {
        // QoS 2 is acknowledged on PUBREL: the broker never sends that PUBLISH again, so there is nothing to hold.
        if (packet.qos !== 1 || !held || held.settled || packet.messageId === undefined) callback()
        else this.defer(packet.messageId, held, callback)
        batch.end()
      }
    }
  }

  /** PUBACKs withheld at the moment. */
  get withheld(): number {
    return this.waiting
  }

  private defer(id: number, held: HeldAck, callback: (err?: Error) => void): void {
    const gen = this.gen
    this.waiting++
    held.whenSettled(() => {
      this.waiting--
      const c = this.client()
      if (gen !== this.gen || !c?.connected) return // the broker redelivers it to the next connection
      ;(c as unknown as PrivateSend)._sendPacket({ cmd: 'puback', messageId: id }, undefined, undefined, true)
    })
    callback(DEFER)
  }

  /**
   * Call when a connection closes: acknowledgements withheld on it are void (the broker redelivers those
   * messages on the next one). Not on connect: mqtt.js hands over the next connection's first messages
   * before its 'connect' event (while it resends its store), and their PUBACKs belong to that connection.
   */
  disconnected(): void {
    this.gen++
  }
}
