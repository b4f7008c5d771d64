import { Router } from 'express';
import type { ApiContext } from '../context';
import { unavailable } from '../http/problem';

export function healthRouter(ctx: ApiContext): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res, next) => {
    const ready = ctx.redis.status === 'ready' && (await withTimeout(ctx.redis.ping(), 1000).then(() => true, () => false));
    if (ready) res.json({ status: 'ready', redis: 'up' });
    else next(unavailable());
  });
  return router;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);
}
