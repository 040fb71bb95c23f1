// Plain node:http listener for Prometheus scrapes, a liveness probe and, when given, the operator's page
// (daemon/view). With basic auth configured every path but /healthz asks for it (probes carry no secret).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Metrics } from './metrics.js'

export interface MetricsServerOptions {
  /** Serves further paths; returns false for a path it does not know. */
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean
  /** Checks credentials; absent = no authentication. */
  auth?: { allows(req: IncomingMessage): boolean }
}

export async function startMetricsServer(metrics: Metrics, host: string, port: number, health: () => { ok: boolean; detail: unknown }, o: MetricsServerOptions = {}): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method === 'GET' && path === '/healthz') {
      const h = health()
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' })
      res.end(JSON.stringify(h.detail))
      return
    }
    if (o.auth && !o.auth.allows(req)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="flashcheck", charset="UTF-8"', 'content-type': 'text/plain' })
      res.end('authentication required\n')
      return
    }
    if (req.method === 'GET' && path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => { res.writeHead(200, { 'content-type': metrics.registry.contentType }); res.end(text) },
        (err: Error) => { res.writeHead(500); res.end(String(err.message)) },
      )
    } else if (!o.extra?.(req, res)) {
      res.writeHead(404); res.end()
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return server
}
