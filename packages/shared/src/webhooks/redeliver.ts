import type { Queue } from 'bullmq';
import { redeliveryJob } from '../catalog';
import type { Delivery } from '../schemas/delivery';
import type { DeliveryLog } from './deliveries';

/** Tries of the job adds of one page: their ids are fixed, so a repeat adds nothing twice. */
const ADD_TRIES = 3;

/**
 * Sends `found` again: each starts a new run (the same webhook-id and bytes, freshly signed, a
 * fresh schedule; a run waiting in the queue for its retry is superseded), but only if it is
 * still in the run and state it was read in, so two callers at once send each one once. Returns
 * how many were sent.
 *
 * Should the job adds fail after the runs were started (Redis gone, the process killed), those
 * deliveries wait as `pending` with no job: a recovery whose scope holds them (a window, or their
 * batch) queues them.
 */
export async function redeliverFound(log: DeliveryLog, queue: Queue, found: readonly Delivery[]): Promise<number> {
  const runs = await log.redeliverMany(found);
  const jobs = found.flatMap((d, i) => {
    const run = runs[i] ?? null;
    return run === null ? [] : [redeliveryJob(d, run)];
  });
  for (let tries = 1; jobs.length; tries++) {
    try {
      await queue.addBulk(jobs);
      break;
    } catch (err) {
      if (tries >= ADD_TRIES) throw err;
    }
  }
  return jobs.length;
}
