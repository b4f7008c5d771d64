import { Router, type RequestHandler } from 'express';
import { webhookRecoverSchema } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { parseBody, parseQuery, refuseBodyFields, requireContentType } from '../http/validate';
import { failedDeliveriesQuery, listFailedDeliveries } from '../services/failed-deliveries';
import { WebhookRecoveries } from '../services/webhook-recoveries';

/** The caller's webhook signing secret (`whsec_…`) and its rotation; the deliveries that did not arrive, and their recovery. */
export function webhooksRouter(ctx: ApiContext, json: RequestHandler): Router {
  const router = Router();
  const recoveries = new WebhookRecoveries(ctx);

  router.get('/secret', async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json({ secret: await ctx.webhookSecrets.current(req.tenant as string) });
  });

  // the previous secret keeps signing (a second signature) for 24 h, so receivers can switch at leisure
  router.post('/secret/rotate', requireContentType('application/json'), json, async (req, res) => {
    refuseBodyFields(req.body);
    res.setHeader('Cache-Control', 'no-store');
    res.json({ secret: await ctx.webhookSecrets.rotate(req.tenant as string) });
  });

  // after an endpoint outage: every delivery that ended failed or exhausted in a time window, sent again in the background
  router.post('/recover', requireContentType('application/json'), json, async (req, res) => {
    const recovery = await recoveries.start(req.tenant as string, parseBody(webhookRecoverSchema, req.body));
    res.status(202).location(recoveries.url(recovery.id)).json(recovery);
  });

  router.get('/deliveries', async (req, res) => {
    res.json(await listFailedDeliveries(ctx, req.tenant as string, parseQuery(failedDeliveriesQuery, req.query)));
  });

  router.get('/recoveries/:id', async (req, res) => {
    res.json(await recoveries.get(req.tenant as string, req.params.id as string));
  });

  return router;
}
