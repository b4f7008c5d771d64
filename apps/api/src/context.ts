import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { createMetrics, observeQueues, type Metrics, createLogger, createRedis, DeliveryLog, EventHub, FsStorage, GenerationStore, keysFor, QUEUES, retentionSeconds, WebhookSecrets, type Keys, type Logger, type Storage } from '@imagegen/shared';
import type { ApiConfig } from './config';
import { Waits } from './services/waits';

/** Everything the routes use, built once per process. */
export interface ApiContext {
  config: ApiConfig;
  logger: Logger;
  /** This process's Prometheus registry and metrics. */
  metrics: Metrics;
  keys: Keys;
  redis: Redis;
  subscriber: Redis;
  hub: EventHub;
  store: GenerationStore;
  storage: Storage;
  queues: { generate: Queue; maintenance: Queue; webhooks: Queue };
  webhookSecrets: WebhookSecrets;
  deliveries: DeliveryLog;
  adminPassword: string;
  /** Aborted when the process begins to shut down: waiters answer at once with what they have. */
  shutdown: AbortSignal;
  /** Requests waiting on generations; shutdown ends them all. */
  waits: Waits;
  beginShutdown(): void;
  close(): Promise<void>;
}

export function createApiContext(config: ApiConfig, adminPassword: string, logger: Logger = createLogger('api', config.LOG_LEVEL, { format: config.LOG_FORMAT })): ApiContext {
  const keys = keysFor(config.QUEUE_PREFIX);
  // fail fast: while Redis is away, commands error at once and requests get 503
  const redis = createRedis(config.REDIS_URL, 'producer', 'imagegen-api');
  const subscriber = createRedis(config.REDIS_URL, 'subscriber', 'imagegen-api-sub');
  const generate = new Queue(QUEUES.generate, { connection: redis, prefix: config.QUEUE_PREFIX });
  generate.on('error', (err) => logger.warn('queue error', { queue: QUEUES.generate, error: err.message }));
  // shown in Bull Board only
  const maintenance = new Queue(QUEUES.maintenance, { connection: redis, prefix: config.QUEUE_PREFIX });
  maintenance.on('error', (err) => logger.warn('queue error', { queue: QUEUES.maintenance, error: err.message }));
  // redeliveries are enqueued here; shown in Bull Board too
  const webhooks = new Queue(QUEUES.webhooks, { connection: redis, prefix: config.QUEUE_PREFIX });
  webhooks.on('error', (err) => logger.warn('queue error', { queue: QUEUES.webhooks, error: err.message }));
  const shutdown = new AbortController();
  const metrics = createMetrics('api');
  observeQueues(metrics, [generate, maintenance, webhooks]);
  return {
    config,
    logger,
    metrics,
    keys,
    redis,
    subscriber,
    hub: new EventHub(subscriber),
    store: new GenerationStore(redis, keys, retentionSeconds(config.RECORD_RETENTION_HOURS)),
    storage: new FsStorage(config.DATA_DIR),
    queues: { generate, maintenance, webhooks },
    webhookSecrets: new WebhookSecrets(redis, keys, config.WEBHOOK_SECRET),
    deliveries: new DeliveryLog(redis, keys, config.RECORD_RETENTION_HOURS * 3600),
    adminPassword,
    shutdown: shutdown.signal,
    waits: new Waits(shutdown.signal),
    beginShutdown: () => shutdown.abort(),
    async close() {
      shutdown.abort();
      await Promise.all([generate.close(), maintenance.close(), webhooks.close()].map((p) => p.catch(() => undefined)));
      await Promise.all([redis.quit(), subscriber.quit()].map((p) => p.catch(() => undefined)));
    },
  };
}
