import { setTimeout as sleep } from 'node:timers/promises';
import { Job, type Processor, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@imagegen/shared';

/**
 * A job fetched in the instant Redis went away can stay active under this worker's lock while the
 * worker never heard of it: the fetch's reply was lost, and the fetch was retried and took the next
 * job. BullMQ finds such a job only once that lock has expired and the stalled check has come round
 * twice (up to the lock duration plus two stalled intervals: a minute and a half by default).
 *
 * After each reconnect this returns such jobs to the queue at once: an active job locked by one of
 * this worker's tokens (`<worker id>:<n>`) that its processor is not running. A job seen so twice, a
 * moment apart, under the same token: a job just fetched and about to start is never taken for one.
 * The move checks the token in the same step, so a job another worker holds is never touched.
 */
export class LostFetches {
  private readonly running = new Set<string>();
  private stopped = false;
  /** One look at a time: reconnects in quick succession share it. */
  private sweeping = false;

  constructor(
    private readonly logger: Logger,
    private readonly settleMs = 2_000,
  ) {}

  /** The processor, keeping count of the jobs it is running. */
  track<T, R>(processor: Processor<T, R>): Processor<T, R> {
    return async (job, token, signal) => {
      const id = job.id as string;
      this.running.add(id);
      try {
        return await processor(job, token, signal);
      } finally {
        this.running.delete(id);
      }
    };
  }

  /** Looks for lost fetches each time `connection` (the worker's own) is ready again. */
  watch(worker: Worker, connection: Redis): void {
    const onReady = () => {
      if (this.stopped || this.sweeping) return;
      this.sweeping = true;
      this.sweep(worker, connection)
        .catch((err: unknown) => this.logger.warn('could not look for jobs lost in a reconnect', { queue: worker.name, error: (err as Error).message }))
        .finally(() => (this.sweeping = false));
    };
    connection.on('ready', onReady);
    worker.once('closing', () => {
      this.stopped = true;
      connection.off('ready', onReady);
    });
  }

  /** One look: the lost jobs go back to the queue; resolves with their ids. */
  async sweep(worker: Worker, connection: Redis): Promise<string[]> {
    const first = await this.unheard(worker, connection);
    if (first.size === 0) return [];
    // unref'd: a closing worker does not wait for it, and finds `stopped` when it ends
    await sleep(this.settleMs, undefined, { ref: false });
    if (this.stopped) return [];
    const second = await this.unheard(worker, connection);
    const returned: string[] = [];
    for (const [id, token] of second) {
      if (first.get(id) !== token) continue;
      const job = await Job.fromId(worker, id);
      if (!job) continue;
      try {
        await job.moveToWait(token);
      } catch (err) {
        // it moved on meanwhile (finished, or its lock went): nothing of ours to return
        this.logger.debug('lost job moved on before it was returned', { queue: worker.name, jobId: id, error: (err as Error).message });
        continue;
      }
      returned.push(id);
      this.logger.warn('job fetched as Redis went away is back in the queue', { queue: worker.name, jobId: id });
    }
    return returned;
  }

  /** Active jobs locked by one of this worker's tokens that its processor is not running: id → token. */
  private async unheard(worker: Worker, connection: Redis): Promise<Map<string, string>> {
    // the active list is bounded by the concurrency of every worker on the queue
    const ids = (await connection.lrange(worker.keys.active as string, 0, -1)).filter((id) => !this.running.has(id));
    if (ids.length === 0) return new Map();
    const locks = await connection.mget(ids.map((id) => `${worker.toKey(id)}:lock`));
    const mine = `${worker.id}:`;
    const found = new Map<string, string>();
    ids.forEach((id, i) => {
      const token = locks[i];
      if (token?.startsWith(mine) && !this.running.has(id)) found.set(id, token);
    });
    return found;
  }
}
