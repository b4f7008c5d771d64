import { Router } from 'express';
import type { ApiContext } from '../context';
import { unavailable } from '../http/problem';

export function healthRouter(ctx: ApiContext): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res, next) => {
    // a key of the prefix, not a PING: on a Cluster a PING goes to any node, and says nothing of
    // the one holding every key of ours (its master may be down while the client is 'ready')
    const ready = ctx.redis.status === 'ready' && (await withTimeout(ctx.redis.exists(ctx.keys.readinessProbe()), 1000).then(() => true, () => false));
    if (ready) res.json({ status: 'ready', redis: 'up' });
    else next(unavailable());
  });
  return router;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);
}
