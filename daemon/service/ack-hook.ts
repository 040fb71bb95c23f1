// The one place that bends mqtt.js's acknowledgement of inbound QoS 1 messages (MQTT 5): a request is handled
// before its PUBACK goes out, and when its verdict is published later (the model step) the PUBACK waits for
// it, so that a daemon that dies meanwhile gets the request redelivered.
//
// mqtt.js offers `customHandleAcks` but no "acknowledge later": the only way to withhold the PUBACK is to pass
// it an Error (which it then emits as 'error'), and the late PUBACK goes out through the client's private
// `_sendPacket`. Both stay inside this module.
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt'

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

/** Passed to mqtt.js as the custom-ack "error" that withholds the PUBACK. */
const DEFER = new Error('PUBACK deferred until the verdict is published')

export class AckHook {
  /** Counts connections, so that a PUBACK withheld on one connection is not sent on the next. */
  private gen = 0

  constructor(private readonly client: () => MqttClient | undefined) {}

  /** Routes QoS 1 messages of an MQTT 5 client through `handle` before they are acknowledged. */
  install(opts: IClientOptions, handle: InboundHandler): void {
    opts.customHandleAcks = (topic, payload, packet, done) => {
      if (packet.qos !== 1) {
        done(0) // QoS 2 is handled on PUBREL through the 'message' event
        return
      }
      const held = handle(topic, payload, packet)
      if (!held || held.settled) {
        done(0)
        return
      }
      const gen = this.gen
      const id = packet.messageId
      held.whenSettled(() => {
        const c = this.client()
        if (id === undefined || gen !== this.gen || !c?.connected) return // the broker redelivers it
        ;(c as unknown as { _sendPacket(p: object, cb?: () => void, cbStorePut?: () => void, noStore?: boolean): void })._sendPacket({ cmd: 'puback', messageId: id }, undefined, undefined, true)
      })
      done(DEFER)
    }
  }

  /** Call on every (re)connect: acknowledgements withheld on the previous connection are void. */
  connected(): void {
    this.gen++
  }

  /** True for the 'error' mqtt.js emits for each withheld PUBACK: not an error. */
  static isDeferral(err: Error): boolean {
    return err === DEFER
  }

  /** Whether QoS 1 messages reach the handler here (MQTT 5) or through the 'message' event. */
  static handlesQos1(protocolVersion: 4 | 5): boolean {
    return protocolVersion === 5
  }
}
