import { WEBHOOK_JOBS, webhookJobOptions, type BatchRecord, type Delivery, type DeliveryState } from '@imagegen/shared';
import type { ApiContext } from '../context';

/** Item ids read, and their delivery logs scanned, per round. */
const PAGE = 500;

/**
 * Sends again every delivery of a batch now in one of `states`: its items' (page by page, in
 * submission order) and then its own (`batch.completed`, queued after them).
 * Each is a new run of its delivery, as `redeliver` makes one: the same webhook-id and bytes,
 * a fresh schedule; a run waiting in the queue for its retry is superseded. Returns how many.
 */
export async function redeliverBatch(ctx: ApiContext, batch: BatchRecord, states: readonly DeliveryState[]): Promise<number> {
  let sent = 0;
  const again = async (subjects: string[]) => {
    const found: Delivery[] = await ctx.deliveries.inStates(subjects, batch.tenant, states);
    const runs = await ctx.deliveries.redeliverMany(found);
    const jobs = found.flatMap((d, i) => {
      const run = runs[i];
      if (run === null || run === undefined) return [];
      return [{ name: WEBHOOK_JOBS.deliver.name, data: { deliveryId: d.id, subject: d.subject, tenant: d.tenant, host: new URL(d.url).host, run }, opts: webhookJobOptions(d.id, run) }];
    });
    if (jobs.length) await ctx.queues.webhooks.addBulk(jobs);
    sent += jobs.length;
  };
  for (let start = 0; start < batch.total; start += PAGE) {
    const ids = await ctx.batches.itemIds(batch.id, start, PAGE);
    if (ids.length === 0) break;
    await again(ids);
  }
  await again([batch.id]);
  return sent;
}
