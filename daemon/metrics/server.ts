// Plain node:http endpoint for Prometheus scrapes and a liveness probe; nothing else is served.
import { createServer, type Server } from 'node:http'
import type { Metrics } from './metrics.js'

export async function startMetricsServer(metrics: Metrics, host: string, port: number, health: () => { ok: boolean; detail: unknown }): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => { res.writeHead(200, { 'content-type': metrics.registry.contentType }); res.end(text) },
        (err: Error) => { res.writeHead(500); res.end(String(err.message)) },
      )
    } else if (req.method === 'GET' && req.url === '/healthz') {
      const h = health()
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' })
      res.end(JSON.stringify(h.detail))
    } else {
      res.writeHead(404); res.end()
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return server
}
