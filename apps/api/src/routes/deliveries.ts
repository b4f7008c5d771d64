import { Router, type RequestHandler } from 'express';
import { redeliveryJob } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { notFound } from '../http/problem';
import { refuseBodyFields, refuseQueryParameters, requireContentType } from '../http/validate';

/** What deliveries belong to: a generation, or a batch (its `batch.completed`). */
export interface DeliverySubject {
  /** How a 404 names it. */
  noun: 'Generation' | 'Batch';
  /** The tenant's own subject of that id, or null: another tenant's reads exactly like an unknown one. */
  find(tenant: string, id: string): Promise<{ id: string } | null>;
}

/** Webhook deliveries of one generation or batch: every attempt, and sending one again. */
export function deliveriesRouter(ctx: ApiContext, subject: DeliverySubject, json: RequestHandler): Router {
  const router = Router();

  const owned = async (tenant: string, id: string) => {
    const found = await subject.find(tenant, id);
    if (!found) throw notFound(`${subject.noun} ${id}`);
    return found;
  };

  router.get('/:id/deliveries', async (req, res) => {
    refuseQueryParameters(req.query);
    const tenant = req.tenant as string;
    const { id } = await owned(tenant, req.params.id as string);
    res.json({ object: 'list', data: await ctx.deliveries.list(id, tenant) });
  });

  // a new run of the same delivery: same webhook-id, same body bytes, a fresh retry schedule
  router.post('/:id/deliveries/:deliveryId/redeliver', requireContentType('application/json'), json, async (req, res) => {
    refuseBodyFields(req.body);
    const tenant = req.tenant as string;
    const { id } = await owned(tenant, req.params.id as string);
    const deliveryId = req.params.deliveryId as string;
    const loaded = /^dlv_[a-z0-9]+$/.test(deliveryId) ? await ctx.deliveries.load(id, deliveryId) : null;
    if (!loaded || loaded.delivery.tenant !== tenant) throw notFound(`Delivery ${deliveryId}`);
    const run = await ctx.deliveries.redeliver(id, deliveryId);
    if (run === null) throw notFound(`Delivery ${deliveryId}`);
    const { delivery } = loaded;
    const job = redeliveryJob(delivery, run);
    await ctx.queues.webhooks.add(job.name, job.data, job.opts);
    res.status(202).json({ id: deliveryId, webhookId: delivery.webhookId, event: delivery.event, state: 'pending' });
  });

  return router;
}
