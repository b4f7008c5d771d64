import { Router } from 'express';
import type { ApiContext } from '../context';
import { basicAuth } from '../http/auth';

/** Prometheus text of this API process (queue depth is read from Redis at each scrape), behind the operator credentials. */
export function metricsRouter(ctx: ApiContext): Router {
  const router = Router();
  router.get('/metrics', basicAuth(ctx.config.ADMIN_USER, ctx.adminPassword), async (_req, res) => {
    const text = await ctx.metrics.registry.metrics();
    res.type(ctx.metrics.registry.contentType).send(text);
  });
  return router;
}
