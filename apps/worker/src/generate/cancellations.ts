import type { Worker } from 'bullmq';
import type { EventHub, Keys } from '@imagegen/shared';

/**
 * Cancellation reaches whichever process runs the job: the API publishes the id, and the
 * worker holding it aborts the job's signal (the upstream call with it).
 */
export async function listenForCancellations(hub: EventHub, keys: Keys, worker: Worker): Promise<() => Promise<void>> {
  // after a reconnect (null) there is nothing to redo: a missed cancel is caught at the next stage boundary
  return hub.subscribe(keys.cancelChannel(), (id) => {
    if (id !== null) worker.cancelJob(id, 'cancelled');
  });
}
