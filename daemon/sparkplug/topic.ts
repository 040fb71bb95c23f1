// Sparkplug B topic namespace (Sparkplug 3.0, 4.1): spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>],
// and spBv1.0/STATE/<host_id> for primary host applications.
export const NAMESPACE = 'spBv1.0'

export const MESSAGE_TYPES = ['NBIRTH', 'NDEATH', 'DBIRTH', 'DDEATH', 'NDATA', 'DDATA', 'NCMD', 'DCMD'] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]

export type SparkplugTopic =
  | { kind: 'node'; group: string; type: MessageType; node: string; device?: string }
  | { kind: 'state'; host: string }

const TYPES = new Set<string>(MESSAGE_TYPES)

/** True for any topic in the Sparkplug B namespace. */
export function isSparkplugTopic(topic: string): boolean {
  return topic.startsWith('spBv1.0/')
}

/** The parts of a Sparkplug B topic, or undefined when it is not a well-formed one. */
export function parseTopic(topic: string): SparkplugTopic | undefined {
  const p = topic.split('/')
  if (p[0] !== NAMESPACE) return undefined
  if (p[1] === 'STATE') return p.length === 3 && p[2] !== '' ? { kind: 'state', host: p[2]! } : undefined
  if (p.length < 4 || p.length > 5 || !TYPES.has(p[2]!) || p.some((x) => x === '')) return undefined
  const type = p[2] as MessageType
  const device = p[4]
  if ((type[0] === 'D') !== (device !== undefined)) return undefined
  return device === undefined ? { kind: 'node', group: p[1]!, type, node: p[3]! } : { kind: 'node', group: p[1]!, type, node: p[3]!, device }
}

export function nodeTopic(group: string, type: MessageType, node: string, device?: string): string {
  return device === undefined ? `${NAMESPACE}/${group}/${type}/${node}` : `${NAMESPACE}/${group}/${type}/${node}/${device}`
}

export function stateTopic(host: string): string {
  return `${NAMESPACE}/STATE/${host}`
}

/** A group, edge node or device id: UTF-8 without '+', '/', '#' (Sparkplug 3.0, 4.1.1), and not empty. */
export function validId(id: string): boolean {
  return id.length > 0 && !/[+/#\u0000]/.test(id)
}
