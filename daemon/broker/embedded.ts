// In-process MQTT 3.1.1 broker for the quickstart and tests: no broker to install. Production uses mosquitto.
import { Aedes } from 'aedes'
import { createServer, type Server } from 'node:net'

export interface EmbeddedBroker {
  port: number
  close(): Promise<void>
}

export async function startEmbeddedBroker(port: number, host = '127.0.0.1'): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker()
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true)
    broker.handle(socket)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address()
  const bound = typeof addr === 'object' && addr ? addr.port : port
  return {
    port: bound,
    close: () => new Promise<void>((resolve) => {
      broker.close(() => server.close(() => resolve()))
    }),
  }
}
