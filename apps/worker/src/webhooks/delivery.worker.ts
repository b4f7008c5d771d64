import { DelayedError, MetricsTime, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUES, WEBHOOK_JOBS, type BatchStore, type DeliveryState } from '@imagegen/shared';
import { LostFetches } from '../recovery/lost-fetches';
import { attemptDelivery, releaseSlot, type AttemptDeps } from './attempt';
import { runRecovery, type RecoveryResult } from './recovery';

export interface DeliveryWorkerOptions {
  connection: Redis;
  prefix: string;
  concurrency: number;
  timeoutMs: number;
  /** A batch's items, for a recovery scoped to the batch. */
  batches: BatchStore;
}

export type DeliveryOutcome = { outcome: DeliveryState | 'stale' | 'gone' | 'missing'; status?: number };

/** A failed attempt with another one to come, after `delayMs` (the backoff strategy reads it). */
class RetryLater extends Error {
  constructor(
    readonly delayMs: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Longest a delivery waiting for a busy host stays parked before it looks again by itself; it is
 * normally woken sooner, by the delivery that frees a slot.
 */
const MAX_PARK_MS = 5000;

/**
 * The webhooks queue's jobs: `recover` (runRecovery) and `deliver`, one attempt of one delivery. A delivery whose host is at its in-flight bound,
 * or whose host's circuit is open, goes back to the delayed set without using an attempt (and
 * without holding a worker slot while it waits). Retries follow the webhook schedule; every
 * attempt sends the frozen body under the same webhook-id, freshly signed.
 */
export function createDeliveryWorker(deps: AttemptDeps, opts: DeliveryWorkerOptions): Worker {
  const { log, limiter, logger } = deps;

  const handler = async (job: Job, token?: string): Promise<DeliveryOutcome | RecoveryResult> => {
    if (job.name === WEBHOOK_JOBS.recover.name) return runRecovery(job, { log, queue: deps.queue, redis: opts.connection, batches: opts.batches });
    const parsed = WEBHOOK_JOBS.deliver.schema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid deliver payload: ${parsed.error.message}`);
    const { deliveryId, subject, host, run, attemptsBefore } = parsed.data;
    const member = `${job.id}:${token ?? ''}`;
    // one round trip: the slot and the frozen delivery
    const [slot, loaded] = await Promise.all([limiter.acquire(host, member, job.id as string), log.load(subject, deliveryId)]);
    const current = loaded && loaded.delivery.run === run && loaded.delivery.state === 'pending';
    if (slot.kind !== 'ok') {
      if (!current) {
        if (slot.kind === 'busy') await limiter.unpark(host, job.id as string);
        return { outcome: loaded ? 'stale' : 'gone' };
      }
      // spread the wake-ups so a host's backlog does not come back all at once
      const wait =
        slot.kind === 'busy'
          ? Math.min(Math.max(slot.retryInMs, 50), MAX_PARK_MS) * (0.5 + Math.random())
          : slot.retryInMs + Math.min(slot.retryInMs, 1000) * Math.random();
      await job.moveToDelayed(Date.now() + Math.round(wait), token);
      throw new DelayedError();
    }
    if (!current) {
      await releaseSlot(deps, host, member, 'unknown');
      return { outcome: loaded ? 'stale' : 'gone' };
    }
    // attempts made before this job (the dispatcher's first try) count toward the schedule
    const attempt = attemptsBefore + job.attemptsMade + 1;
    const outcome = await attemptDelivery(deps, loaded, host, member, attempt);
    // a redelivery started meanwhile: that run carries on, this one stops
    if (outcome.recorded !== 'ok') return { outcome: outcome.recorded };
    if (outcome.state === 'pending') throw new RetryLater(outcome.retryInMs ?? 0, outcome.error ?? 'failed');
    return { outcome: outcome.state, ...(outcome.status !== undefined ? { status: outcome.status } : {}) };
  };

  const lost = new LostFetches(logger);
  const worker = new Worker(QUEUES.webhooks, lost.track(handler), {
    connection: opts.connection,
    prefix: opts.prefix,
    concurrency: opts.concurrency,
    lockDuration: Math.max(30_000, opts.timeoutMs * 2 + 5_000),
    // per-minute completed/failed counts, charted by Bull Board
    metrics: { maxDataPoints: MetricsTime.ONE_WEEK },
    settings: {
      backoffStrategy: (_attemptsMade: number, _type?: string, err?: Error) => (err instanceof RetryLater ? err.delayMs : 1_000),
    },
  });
  worker.on('error', (err) => logger.error('webhook worker error', { error: err.message }));
  lost.watch(worker, opts.connection);
  return worker;
}
