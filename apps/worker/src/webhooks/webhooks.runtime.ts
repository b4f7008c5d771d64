import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Queue, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { BatchStore, createRedis, PublishedFilesBase, RedisClock, CREATE_DELIVERIES_COMMAND, DeliveryLog, OUTBOX_GROUP, QUEUES, redisNotServing, retentionSeconds, WebhookSecrets, type EventHub, type Keys, type Logger, type Metrics } from '@imagegen/shared';
import type { WorkerConfig } from '../config';
import { createDeliveryWorker } from './delivery.worker';
import { OutboxDispatcher } from './dispatcher';
import { HostLimiter } from './host-limiter';
import { WebhookSender } from './sender';
import { AttemptBatcher, ATTEMPT_BATCH_COMMAND } from './attempt-batcher';

export interface WebhooksRuntime {
  worker: Worker;
  /** Stops reading the outbox (what was read is dispatched first). */
  stopDispatching(): Promise<void>;
  /** Closes what is left once the worker has drained. */
  close(): Promise<void>;
  /** Cuts connections at once (shutdown timeout). */
  disconnect(): void;
}

/** Everything of webhooks in a worker process: the outbox dispatcher and the delivery worker. */
/** Signing secrets are re-read at least this often (and at once when a rotation is announced). */
const SIGNING_CACHE_MS = 5_000;

export async function startWebhooks(config: WorkerConfig, keys: Keys, connection: Redis, hub: EventHub, logger: Logger, metrics?: Metrics): Promise<WebhooksRuntime> {
  // many deliveries at once each send a few small commands: coalesce them into fewer writes; the
  // commands that already carry a batch each skip it (an automatic pipeline per call costs more than it saves)
  const redis = createRedis(config.redis, 'worker', 'imagegen-worker-webhooks', {
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: [CREATE_DELIVERIES_COMMAND, ATTEMPT_BATCH_COMMAND],
  });
  const secrets = new WebhookSecrets(redis, keys, config.WEBHOOK_SECRET, SIGNING_CACHE_MS);
  // after a reconnect (null) announcements may have been missed: forget every cached secret
  const stopRotations = await hub.subscribe(keys.webhookSecretRotations(), (tenant) => (tenant === null ? secrets.forgetAll() : secrets.forget(tenant)));
  // made (or read) at start: every process signs with the same master secret (while Redis is full,
  // made by the first signing once it has room: nothing is delivered before that anyway)
  await secrets.master().catch((err: unknown) => {
    const refusal = redisNotServing(err);
    if (refusal === undefined) throw err;
    logger.warn('Redis refuses writes: the webhook master secret is made once it takes them', { error: refusal });
  });
  const stopKeepingMaster = secrets.keepMaster();
  const log = new DeliveryLog(redis, keys, retentionSeconds(config.RECORD_RETENTION_HOURS));
  const queue = new Queue(QUEUES.webhooks, { connection: redis, prefix: config.QUEUE_PREFIX });
  queue.on('error', (err) => logger.warn('queue error', { queue: QUEUES.webhooks, error: err.message }));
  const clock = new RedisClock(redis);
  const sender = new WebhookSender({ timeoutMs: config.WEBHOOK_TIMEOUT_MS, allowPrivate: config.WEBHOOK_ALLOW_PRIVATE, connectionsPerOrigin: config.WEBHOOK_MAX_IN_FLIGHT_PER_HOST, now: () => clock.now() });
  const limiter = new HostLimiter(redis, keys, {
    maxInFlight: config.WEBHOOK_MAX_IN_FLIGHT_PER_HOST,
    leaseMs: config.WEBHOOK_TIMEOUT_MS + 5_000,
    circuitFailures: config.WEBHOOK_CIRCUIT_FAILURES,
    circuitOpenMs: config.WEBHOOK_CIRCUIT_OPEN_MS,
  });
  const batcher = new AttemptBatcher(redis, keys, log, limiter, OUTBOX_GROUP);
  const attempts = { log, secrets, limiter, batcher, sender, queue, logger, retryScale: config.WEBHOOK_RETRY_SCALE, ...(metrics ? { metrics } : {}) };
  const worker = createDeliveryWorker(attempts, {
    connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: config.WEBHOOK_CONCURRENCY,
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    batches: new BatchStore(redis, keys),
    stalledIntervalMs: config.WORKER_STALLED_INTERVAL_MS,
    maxStalledCount: config.WORKER_MAX_STALLED_COUNT,
  });
  const reader = createRedis(config.redis, 'worker', 'imagegen-worker-outbox');
  const published = config.filesBaseUrlGiven ? undefined : new PublishedFilesBase(redis, keys, config.filesBaseUrl);
  const filesBaseUrl = published ? () => published.current : () => config.filesBaseUrl;
  const dispatcher = new OutboxDispatcher(
    reader,
    redis,
    keys,
    queue,
    log,
    logger,
    {
      consumer: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
      claimIdleMs: config.WEBHOOK_DISPATCH_CLAIM_IDLE_MS,
      startDelayMs: config.WEBHOOK_DISPATCH_START_DELAY_MS,
      filesBaseUrl,
      inlineConcurrency: config.WEBHOOK_CONCURRENCY,
    },
    attempts,
  );
  // learnt before the first event is dispatched, when an API process has published it
  await published?.read();
  dispatcher.start();
  return {
    worker,
    stopDispatching: () => dispatcher.stop(),
    async close() {
      published?.stop();
      clock.stop();
      stopKeepingMaster();
      await stopRotations().catch(() => undefined);
      await Promise.all([queue.close(), sender.close()].map((p) => p.catch(() => undefined)));
      await Promise.all([reader.quit(), redis.quit()].map((p) => p.catch(() => undefined)));
    },
    disconnect() {
      reader.disconnect();
      redis.disconnect();
    },
  };
}
