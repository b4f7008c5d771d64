import { DelayedError, Job, MetricsTime, UnrecoverableError, Worker, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUES, WEBHOOK_JOBS, type DeliveryLog, type DeliveryState, type Logger, type Metrics, type WebhookSecrets } from '@imagegen/shared';
import type { HostHealth, HostLimiter } from './host-limiter';
import { retryDelayMs } from './schedule';
import type { SendResult, WebhookSender } from './sender';

export interface DeliveryWorkerDeps {
  log: DeliveryLog;
  secrets: WebhookSecrets;
  limiter: HostLimiter;
  sender: WebhookSender;
  /** The webhooks queue, to wake parked deliveries. */
  queue: Queue;
  logger: Logger;
  /** Attempt outcomes and latency, when this process exports metrics. */
  metrics?: Metrics;
}

export interface DeliveryWorkerOptions {
  connection: Redis;
  prefix: string;
  concurrency: number;
  retryScale: number;
  timeoutMs: number;
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

function healthOf(result: SendResult): HostHealth {
  if (result.hostTrouble) return 'trouble';
  return result.status !== undefined ? 'up' : 'unknown';
}

function stateAfter(result: SendResult, retry: number, scale: number): { state: DeliveryState; retryInMs?: number } {
  if (result.ok) return { state: 'delivered' };
  // 410 Gone: the receiver says this endpoint is no more
  if (result.status === 410) return { state: 'failed' };
  const delay = retryDelayMs(retry, scale, result.retryAfterMs);
  return delay === null ? { state: 'exhausted' } : { state: 'pending', retryInMs: delay };
}

/**
 * The `deliver` job: one attempt of one delivery. A delivery whose host is at its in-flight bound,
 * or whose host's circuit is open, goes back to the delayed set without using an attempt (and
 * without holding a worker slot while it waits). Retries follow the webhook schedule; every
 * attempt sends the frozen body under the same webhook-id, freshly signed.
 */
export function createDeliveryWorker(deps: DeliveryWorkerDeps, opts: DeliveryWorkerOptions): Worker {
  const { log, secrets, limiter, sender, queue, logger } = deps;

  // the freed slot goes to the oldest parked delivery; if it is not parked yet, its own timer wakes it
  const release = async (host: string, member: string, health: HostHealth) => {
    const { opened, wake } = await limiter.release(host, member, health);
    if (opened) logger.warn('webhook host failing: holding its deliveries back', { host });
    if (wake) {
      void Job.fromId(queue, wake)
        .then((parked) => parked?.promote())
        .catch(() => undefined);
    }
  };

  const handler = async (job: Job, token?: string): Promise<DeliveryOutcome> => {
    const parsed = WEBHOOK_JOBS.deliver.schema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid deliver payload: ${parsed.error.message}`);
    const { deliveryId, subject, tenant, host, run } = parsed.data;
    const member = `${job.id}:${token ?? ''}`;
    // one round trip: the slot, the frozen delivery and the signing secrets
    const [slot, loaded, signing] = await Promise.all([limiter.acquire(host, member, job.id as string), log.load(subject, deliveryId), secrets.signing(tenant)]);
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
    let released = false;
    try {
      if (!current) return { outcome: loaded ? 'stale' : 'gone' };
      const { delivery, body } = loaded;
      const result = await sender.send({ url: delivery.url, webhookId: delivery.webhookId, body, secrets: signing });
      const { state, retryInMs } = stateAfter(result, job.attemptsMade + 1, opts.retryScale);
      deps.metrics?.webhookDeliveries.inc({ outcome: state });
      deps.metrics?.webhookDuration.observe({ outcome: state }, result.durationMs / 1000);
      released = true;
      const [recorded] = await Promise.all([
        log.recordAttempt(subject, deliveryId, { run, state, status: result.status, error: result.error, durationMs: result.durationMs, retryInMs }),
        release(host, member, healthOf(result)),
      ]);
      // a redelivery started meanwhile: that run carries on, this one stops
      if (recorded !== 'ok') return { outcome: recorded };
      if (state === 'pending') throw new RetryLater(retryInMs ?? 0, result.error ?? 'failed');
      return { outcome: state, ...(result.status !== undefined ? { status: result.status } : {}) };
    } finally {
      if (!released) await release(host, member, 'unknown').catch(() => undefined);
    }
  };

  const worker = new Worker(QUEUES.webhooks, handler, {
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
  return worker;
}
