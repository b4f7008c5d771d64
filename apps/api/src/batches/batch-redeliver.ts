import { redeliverFound, type BatchRecord, type DeliveryState } from '@imagegen/shared';
import type { ApiContext } from '../context';

/** Item ids read, and their delivery logs scanned, per round. */
const PAGE = 500;

/**
 * Sends again every delivery of a batch now in one of `states`: its items' (page by page, in
 * submission order) and then its own (`batch.completed`, queued after them; as with any
 * redelivery, arrival order is not guaranteed). Each is a new run, started only if the
 * delivery is still as it was read (redeliverFound). Returns how many.
 */
export async function redeliverBatch(ctx: ApiContext, batch: BatchRecord, states: readonly DeliveryState[]): Promise<number> {
  let sent = 0;
  const again = async (subjects: string[]) => {
    sent += await redeliverFound(ctx.deliveries, ctx.queues.webhooks, await ctx.deliveries.inStates(subjects, batch.tenant, states));
  };
  for (let start = 0; start < batch.total; start += PAGE) {
    const ids = await ctx.batches.itemIds(batch.id, start, PAGE);
    if (ids.length === 0) break;
    await again(ids);
  }
  await again([batch.id]);
  return sent;
}
