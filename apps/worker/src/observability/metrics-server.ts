import { createServer, type Server } from 'node:http';
import type { Metrics } from '@imagegen/shared';

/**
 * This worker's own Prometheus endpoint (`GET /metrics`), so every replica is scraped apart.
 * Meant for the private network the scraper shares with the workers: it carries counts, never
 * ids, tenants or secrets.
 */
export async function startMetricsServer(metrics: Metrics, port: number, host: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType, 'x-content-type-options': 'nosniff' }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
