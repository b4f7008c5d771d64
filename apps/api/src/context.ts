import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { WaiterChannel, BatchStore, publishFilesBase, createMetrics, observeOutbox, observeQueues, outboxBacklog, type Metrics, createLogger, createRedis, createStorage, storageErrorText, DeliveryLog, EventHub, GenerationStore, keysFor, QUEUES, RedisClock, retentionSeconds, WebhookSecrets, type Keys, type Logger, type Storage } from '@imagegen/shared';
import type { ApiConfig } from './config';
import { ApiKeyStore } from './services/api-keys';
import { Quotas } from './services/quotas';
import { Waits } from './services/waits';

/** Everything the routes use, built once per process. */
export interface ApiContext {
  config: ApiConfig;
  logger: Logger;
  /** This process's Prometheus registry and metrics. */
  metrics: Metrics;
  keys: Keys;
  redis: Redis;
  /** Redis's time without a round trip: ids are stamped from it. */
  clock: RedisClock;
  subscriber: Redis;
  hub: EventHub;
  /** This process's channel for the ends of generations its requests wait on. */
  waiterChannel: WaiterChannel;
  store: GenerationStore;
  batches: BatchStore;
  storage: Storage;
  queues: { generate: Queue; maintenance: Queue; webhooks: Queue };
  webhookSecrets: WebhookSecrets;
  deliveries: DeliveryLog;
  /** The operators' password; undefined until known (see adminPasswordInBackground). */
  adminPassword: () => string | undefined;
  /** API keys managed at run time (beside API_KEYS). */
  apiKeyStore: ApiKeyStore;
  /** Per-tenant submission, item and queued quotas. */
  quotas: Quotas;
  /** Aborted when the process begins to shut down: waiters answer at once with what they have. */
  shutdown: AbortSignal;
  /** Requests waiting on generations; shutdown ends them all. */
  waits: Waits;
  beginShutdown(): void;
  close(): Promise<void>;
}

export function createApiContext(config: ApiConfig, adminPassword: string | (() => string | undefined), logger: Logger = createLogger('api', config.LOG_LEVEL, { format: config.LOG_FORMAT })): ApiContext {
  const keys = keysFor(config.QUEUE_PREFIX);
  // fail fast: while Redis is away, commands error at once and requests get 503
  const redis = createRedis(config.redis, 'producer', 'imagegen-api');
  const subscriber = createRedis(config.redis, 'subscriber', 'imagegen-api-sub');
  const clock = new RedisClock(redis);
  const generate = new Queue(QUEUES.generate, { connection: redis, prefix: config.QUEUE_PREFIX });
  generate.on('error', (err) => logger.warn('queue error', { queue: QUEUES.generate, error: err.message }));
  // shown in Bull Board only
  const maintenance = new Queue(QUEUES.maintenance, { connection: redis, prefix: config.QUEUE_PREFIX });
  maintenance.on('error', (err) => logger.warn('queue error', { queue: QUEUES.maintenance, error: err.message }));
  // redeliveries are enqueued here; shown in Bull Board too
  const webhooks = new Queue(QUEUES.webhooks, { connection: redis, prefix: config.QUEUE_PREFIX });
  webhooks.on('error', (err) => logger.warn('queue error', { queue: QUEUES.webhooks, error: err.message }));
  const shutdown = new AbortController();
  const storage = createStorage(config);
  // a setup that cannot work (a bucket that does not exist, credentials refused) is said at once, not at the first download
  void storage.reachable?.().catch((err: unknown) => logger.error('the file store cannot be used: downloads answer 503 until it can', { error: storageErrorText(err) }));
  const metrics = createMetrics('api');
  observeQueues(metrics, [generate, maintenance, webhooks]);
  observeOutbox(metrics, () => outboxBacklog(redis, keys));
  const hub = new EventHub(subscriber);
  const store = new GenerationStore(redis, keys, retentionSeconds(config.RECORD_RETENTION_HOURS));
  const waiterChannel = new WaiterChannel(hub, store, keys.waiterChannel(randomUUID()));
  // until it is subscribed, waits subscribe per generation
  waiterChannel.start().catch((err: Error) => logger.warn('waiter channel not subscribed: waits subscribe per generation', { error: err.message }));
  const webhookSecrets = new WebhookSecrets(redis, keys, config.WEBHOOK_SECRET);
  // held from the start, so that this process puts it back should Redis lose it
  webhookSecrets.master().catch(() => undefined);
  const stopKeepingMaster = webhookSecrets.keepMaster();
  // for workers without a PUBLIC_BASE_URL of their own: webhook bodies carry the URLs this process hands out
  const filesBase = publishFilesBase(redis, keys, config.filesBaseUrl);
  return {
    config,
    logger,
    metrics,
    keys,
    redis,
    clock,
    subscriber,
    hub,
    waiterChannel,
    store,
    batches: new BatchStore(redis, keys),
    storage,
    queues: { generate, maintenance, webhooks },
    webhookSecrets,
    deliveries: new DeliveryLog(redis, keys, retentionSeconds(config.RECORD_RETENTION_HOURS)),
    adminPassword: typeof adminPassword === 'string' ? () => adminPassword : adminPassword,
    apiKeyStore: new ApiKeyStore(redis, keys),
    quotas: new Quotas(redis, keys, { submissions: config.RATE_LIMIT_PER_MINUTE, items: config.QUOTA_ITEMS_PER_MINUTE, queued: config.QUOTA_MAX_QUEUED }, config.QUOTA_OVERRIDES),
    shutdown: shutdown.signal,
    waits: new Waits(shutdown.signal),
    beginShutdown: () => shutdown.abort(),
    async close() {
      shutdown.abort();
      clock.stop();
      filesBase.stop();
      stopKeepingMaster();
      await Promise.all([generate.close(), maintenance.close(), webhooks.close()].map((p) => p.catch(() => undefined)));
      await Promise.all([redis.quit(), subscriber.quit()].map((p) => p.catch(() => undefined)));
      await storage.close?.();
    },
  };
}
