// mqtt.js leaves Nagle's algorithm on; with QoS 1 the PUBACK/response interplay with delayed ACKs then
// adds a ~40 ms tail to round trips. Called on every (re)connect because each one opens a new socket.
import type { MqttClient } from 'mqtt'

export function setNoDelay(client: MqttClient): void {
  const s = client.stream as unknown as { setNoDelay?: (v: boolean) => void; socket?: { setNoDelay?: (v: boolean) => void } }
  if (typeof s.setNoDelay === 'function') s.setNoDelay(true)
  else s.socket?.setNoDelay?.(true)
}
