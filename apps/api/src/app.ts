import express, { type RequestHandler } from 'express';
import type { ApiContext } from './context';
import { tenantAuth } from './http/auth';
import { limitedBody } from './http/body-limit';
import { requestLogging } from './http/request-log';
import { requestMetrics } from './http/request-metrics';
import { securityHeaders } from './http/security-headers';
import { verifyUtf8 } from './http/utf8';
import { metricsRouter } from './routes/metrics';
import { galleryRouter } from './routes/gallery';
import { errorHandler, HttpProblem, sendProblem, unavailable } from './http/problem';
import { adminRouter } from './routes/admin';
import { batchesRouter } from './routes/batches';
import { docsRouter } from './routes/docs';
import { filesCors, filesRouter } from './routes/files';
import { generationsRouter } from './routes/generations';
import { healthRouter } from './routes/health';
import { seedRouter } from './routes/seed';
import { tenantsAdminRouter } from './routes/tenants';
import { usageRouter } from './routes/usage';
import { deliveriesRouter } from './routes/deliveries';
import { webhooksRouter } from './routes/webhooks';
import { GenerationsService } from './services/generations';
import { allowedMethods } from './http/method-not-allowed';
import { hostRequired } from './http/host-required';
import { buildOpenApi } from './openapi';

/** Builds the Express app; listening and shutdown belong to main.ts. */
export function createApp(ctx: ApiContext): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  const json = limitedBody(ctx.config.MAX_BODY_BYTES, express.json({ limit: ctx.config.MAX_BODY_BYTES, strict: false, type: 'application/json', verify: verifyUtf8 }));
  const auth = tenantAuth(ctx.config.apiKeys, ctx.apiKeyStore);
  // while Redis is away, answer at once instead of queueing requests behind a reconnect
  const redisReady: RequestHandler = (_req, _res, next) => next(ctx.redis.status === 'ready' ? undefined : unavailable());
  const generations = new GenerationsService(ctx);
  const openApi = buildOpenApi(ctx.config.PUBLIC_BASE_URL);

  app.use(securityHeaders(ctx.config.filesBaseUrl));
  app.use(hostRequired);
  app.use(requestLogging(ctx.logger));
  app.use(requestMetrics(ctx.metrics));
  // the API first: the routes clients call most pass no other router's layers
  app.use('/files', filesCors());
  const allowed = allowedMethods(openApi.paths);
  // what a documented path answers, before any credentials are asked for (Express's own answer
  // was a 200 text/plain, and a 401 under /v1)
  app.options('/{*path}', (req, res, next) => {
    const methods = allowed(req.path);
    if (!methods) return next();
    res.set('Allow', methods.join(', ')).status(204).end();
  });
  app.use('/v1', auth, redisReady);
  app.use('/v1/generations', generationsRouter(ctx, generations, json));
  app.use('/v1/generations', deliveriesRouter(ctx, { noun: 'Generation', find: (tenant, id) => ctx.store.getForTenant(id, tenant) }, json));
  app.use('/v1/batches', deliveriesRouter(ctx, { noun: 'Batch', find: (tenant, id) => ctx.batches.getForTenant(id, tenant) }, json));
  app.use('/v1/batches', batchesRouter(ctx, json));
  app.use('/v1/webhooks', webhooksRouter(ctx, json));
  app.use('/v1/usage', usageRouter(ctx));
  app.use('/api/odin', auth, redisReady);
  app.use(seedRouter(ctx, generations, json));
  app.use(healthRouter(ctx));
  app.use(metricsRouter(ctx));
  app.use(galleryRouter(ctx));
  app.use(docsRouter(openApi));
  app.use(filesRouter(ctx));
  app.use(tenantsAdminRouter(ctx, json, redisReady));
  app.use(adminRouter(ctx, redisReady));

  app.use((req, res) => {
    const methods = allowed(req.path);
    if (methods) sendProblem(res, new HttpProblem(405, 'Method not allowed', `${req.path} answers ${methods.join(', ')}, not ${req.method}`, undefined, { Allow: methods.join(', ') }));
    else sendProblem(res, new HttpProblem(404, 'Not found', `No route for ${req.method} ${req.path}`));
  });
  app.use(errorHandler(ctx.logger));
  return app;
}
