import { redeliveryJob, type BatchRecord, type Delivery, type DeliveryState } from '@imagegen/shared';
import type { ApiContext } from '../context';

/** Item ids read, and their delivery logs scanned, per round. */
const PAGE = 500;

/** Tries of the job adds of one page: their ids are fixed, so a repeat adds nothing twice. */
const ADD_TRIES = 3;

/**
 * Sends again every delivery of a batch now in one of `states`: its items' (page by page, in
 * submission order) and then its own (`batch.completed`, queued after them; as with any
 * redelivery, arrival order is not guaranteed). Each is a new run of its delivery, as
 * `redeliver` makes one: the same webhook-id and bytes, a fresh schedule; a run waiting in the
 * queue for its retry is superseded. A delivery is started again only if it is still as it was
 * read, so two calls at once send each one once. Returns how many.
 *
 * Should the job adds fail after the runs were started (Redis gone, the process killed), those
 * deliveries wait as `pending` with no job: a call with `pending` among the states sends them.
 */
export async function redeliverBatch(ctx: ApiContext, batch: BatchRecord, states: readonly DeliveryState[]): Promise<number> {
  let sent = 0;
  const again = async (subjects: string[]) => {
    // a field scan may name an entry twice
    const found: Delivery[] = [...new Map((await ctx.deliveries.inStates(subjects, batch.tenant, states)).map((d) => [d.id, d])).values()];
    const runs = await ctx.deliveries.redeliverMany(found);
    const jobs = found.flatMap((d, i) => {
      const run = runs[i] ?? null;
      return run === null ? [] : [redeliveryJob(d, run)];
    });
    for (let tries = 1; jobs.length; tries++) {
      try {
        await ctx.queues.webhooks.addBulk(jobs);
        break;
      } catch (err) {
        if (tries >= ADD_TRIES) throw err;
      }
    }
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
