import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { eventually } from './net';
import { REDIS_URL } from './redis';

export interface Maintenance {
  queue: Queue;
  /** Runs one `sweep` through the queue, as the scheduler would, and returns its result. */
  sweepOnce(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** The `maintenance` queue of a stack's prefix, seen from a test. */
export function openMaintenance(prefix: string): Maintenance {
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue('maintenance', { connection, prefix });
  return {
    queue,
    async sweepOnce() {
      const job = await queue.add('sweep', {});
      const result = await eventually(async () => {
        const state = await job.getState();
        if (state === 'failed') throw new Error('sweep failed');
        return state === 'completed' ? ((await queue.getJob(job.id!))?.returnvalue as Record<string, number>) : undefined;
      }, 60_000);
      await job.remove();
      return result;
    },
    async close() {
      await queue.close();
      // a queue does not close a connection it was handed
      await connection.quit();
    },
  };
}
