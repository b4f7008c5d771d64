import type { Worker } from 'bullmq';
import type { EventHub, Keys } from '@imagegen/shared';

/**
 * Cancellation reaches whichever process runs the job: the API publishes the id, and the
 * worker holding it aborts the job's signal (the upstream call with it).
 */
export async function listenForCancellations(hub: EventHub, keys: Keys, worker: Worker): Promise<() => Promise<void>> {
  return hub.subscribe(keys.cancelChannel(), (id) => {
    worker.cancelJob(id, 'cancelled');
  });
}
