import { Router } from 'express';
import { WEBHOOK_JOBS, webhookJobOptions } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { notFound } from '../http/problem';

/** Webhook deliveries of one generation: every attempt, and sending one again. */
export function deliveriesRouter(ctx: ApiContext): Router {
  const router = Router();

  // another tenant's generation reads exactly like an unknown one
  const owned = async (tenant: string, id: string) => {
    const record = await ctx.store.getForTenant(id, tenant);
    if (!record) throw notFound(`Generation ${id}`);
    return record;
  };

  router.get('/:id/deliveries', async (req, res) => {
    const tenant = req.tenant as string;
    const record = await owned(tenant, req.params.id as string);
    res.json({ object: 'list', data: await ctx.deliveries.list(record.id, tenant) });
  });

  // a new run of the same delivery: same webhook-id, same body bytes, a fresh retry schedule
  router.post('/:id/deliveries/:deliveryId/redeliver', async (req, res) => {
    const tenant = req.tenant as string;
    const record = await owned(tenant, req.params.id as string);
    const deliveryId = req.params.deliveryId as string;
    const loaded = /^dlv_[a-z0-9]+$/.test(deliveryId) ? await ctx.deliveries.load(record.id, deliveryId) : null;
    if (!loaded || loaded.delivery.tenant !== tenant) throw notFound(`Delivery ${deliveryId}`);
    const run = await ctx.deliveries.redeliver(record.id, deliveryId);
    if (run === null) throw notFound(`Delivery ${deliveryId}`);
    const { delivery } = loaded;
    await ctx.queues.webhooks.add(
      WEBHOOK_JOBS.deliver.name,
      { deliveryId, subject: record.id, tenant, host: new URL(delivery.url).host, run },
      webhookJobOptions(deliveryId, run),
    );
    res.status(202).json({ id: deliveryId, webhookId: delivery.webhookId, event: delivery.event, state: 'pending' });
  });

  return router;
}
