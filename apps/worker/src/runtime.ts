import { BatchStore, createMetrics, createLogger, createRedis, createStorage, storageErrorText, EventHub, GenerationStore, keysFor, QUEUES, RecordRetention, retentionSeconds, RetryDue, type GeneratorProvider, type Metrics, type Logger, type Storage } from '@imagegen/shared';
import { Queue, type Worker } from 'bullmq';
import type { WorkerConfig } from './config';
import { randomUUID } from 'node:crypto';
import { BatchFeeder } from './batches/feeder';
import { listenForCancellations } from './generate/cancellations';
import { createGenerateWorker } from './generate/generate.worker';
import { OrphanService } from './maintenance/orphans.service';
import { RetentionService } from './maintenance/retention.service';
import { createMaintenanceWorker } from './maintenance/sweep.worker';
import { keepSweepScheduled } from './maintenance/sweep-schedule';
import { GenerationPipeline } from './generate/generation.pipeline';
import type { ImageStage } from './images/image-stage';
import { Semaphore } from './images/semaphore';
import { createProvider } from './providers';
import { startWebhooks } from './webhooks/webhooks.runtime';
import { instrumentProvider } from './observability/instrumented-provider';
import { startMetricsServer } from './observability/metrics-server';

export interface WorkerRuntime {
  workers: Worker[];
  metrics: Metrics;
  /** Stops taking jobs, lets active ones finish (up to the shutdown timeout), closes connections. */
  close(): Promise<void>;
}

export interface WorkerOverrides {
  /** Another storage backend (object storage, or a fault-injecting one in tests). */
  storage?: Storage;
  /** Another generator (benchmarks measure the pipeline around a fixed-cost one). */
  provider?: GeneratorProvider;
  /** Another image stage (benchmarks switch the image work off to measure what surrounds it). */
  images?: ImageStage;
}

/** Builds every consumer of the worker process from typed config. */
export async function startWorkerRuntime(
  config: WorkerConfig,
  logger: Logger = createLogger('worker', config.LOG_LEVEL, { format: config.LOG_FORMAT }),
  overrides: WorkerOverrides = {},
): Promise<WorkerRuntime> {
  const keys = keysFor(config.QUEUE_PREFIX);
  const connection = createRedis(config.redis, 'worker', 'imagegen-worker');
  const storeRedis = createRedis(config.redis, 'worker', 'imagegen-worker-store');
  const subscriber = createRedis(config.redis, 'subscriber', 'imagegen-worker-sub');
  const retention = retentionSeconds(config.RECORD_RETENTION_HOURS);
  const store = new GenerationStore(storeRedis, keys, retention);
  const batches = new BatchStore(storeRedis, keys);
  const storage = overrides.storage ?? createStorage(config);
  // a setup that cannot work (a bucket that does not exist, credentials refused) is said at once, not by each generation waiting for it
  void storage.reachable?.().catch((err: unknown) => logger.error('the file store cannot be used: generations wait for it (storage_failed) until it can', { error: storageErrorText(err) }));
  const generateQueue = new Queue(QUEUES.generate, { connection: storeRedis, prefix: config.QUEUE_PREFIX });
  generateQueue.on('error', (err) => logger.warn('queue error', { error: err.message }));
  // the sweep's handle on the webhooks queue (the delivery side has its own, on its own connection)
  const webhooksQueue = new Queue(QUEUES.webhooks, { connection: storeRedis, prefix: config.QUEUE_PREFIX });
  webhooksQueue.on('error', (err) => logger.warn('queue error', { queue: QUEUES.webhooks, error: err.message }));
  const recordRetention = new RecordRetention(storeRedis, keys);
  const retentionService = new RetentionService(recordRetention, storage, [generateQueue, webhooksQueue], retention, logger, config.USAGE_RETENTION_DAYS);
  // files half-written by a worker killed mid-write; never shown, since they live apart from finished ones
  void retentionService.sweepTemporary().then(
    (n) => n > 0 && logger.info('removed stale temporary files', { count: n }),
    () => undefined,
  );
  const cpu = new Semaphore(config.CPU_CONCURRENCY);
  const metrics = createMetrics('worker');
  const provider = instrumentProvider(overrides.provider ?? createProvider(config, cpu), metrics);
  const pipeline = new GenerationPipeline(store, storage, provider, cpu, {
    timeoutMs: config.GENERATOR_TIMEOUT_MS,
    maxDownloadBytes: config.DOWNLOAD_MAX_BYTES,
    spoolBudgetBytes: config.STORAGE_SPOOL_MAX_MB * 1024 * 1024,
    thumbnails: {
      sizes: config.THUMBNAIL_SIZES,
      format: config.THUMBNAIL_FORMAT,
      quality: config.THUMBNAIL_QUALITY,
      maxPixels: config.MAX_INPUT_PIXELS,
      placeholder: config.THUMBHASH,
    },
    metrics,
    ...(overrides.images ? { images: overrides.images } : {}),
  });

  const generate = createGenerateWorker(pipeline, store, generateQueue, logger, {
    connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: config.WORKER_CONCURRENCY,
    lockDurationMs: config.WORKER_LOCK_DURATION_MS,
    stalledIntervalMs: config.WORKER_STALLED_INTERVAL_MS,
    maxStalledCount: config.WORKER_MAX_STALLED_COUNT,
    metrics,
    backoff: { baseMs: config.GENERATOR_BACKOFF_MS, maxMs: config.GENERATOR_BACKOFF_MAX_MS, jitter: config.GENERATOR_RETRY_JITTER },
    retryDue: new RetryDue(storeRedis, keys),
    ...(config.GENERATOR_RATE_LIMIT_MAX > 0 ? { rateLimit: { max: config.GENERATOR_RATE_LIMIT_MAX, duration: config.GENERATOR_RATE_LIMIT_WINDOW_MS } } : {}),
  });
  const maintenanceQueue = new Queue(QUEUES.maintenance, { connection: storeRedis, prefix: config.QUEUE_PREFIX });
  maintenanceQueue.on('error', (err) => logger.warn('queue error', { error: err.message }));
  const stopSweepSchedule = await keepSweepScheduled(maintenanceQueue, config.MAINTENANCE_INTERVAL_MS, logger);
  const maintenance = createMaintenanceWorker(
    retentionService,
    new OrphanService(recordRetention, store, generateQueue, logger, config.ORPHAN_MIN_AGE_MS),
    logger,
    { connection, prefix: config.QUEUE_PREFIX },
  );
  const feeder = new BatchFeeder(storeRedis, keys, generateQueue, logger, {
    window: config.BATCH_FEED_WINDOW,
    intervalMs: config.BATCH_FEED_INTERVAL_MS,
    owner: randomUUID(),
    policy: { maxAttempts: config.GENERATOR_MAX_ATTEMPTS, backoffMs: config.GENERATOR_BACKOFF_MS, retentionSeconds: retention },
    cancels: { items: (batch, ids) => store.cancelBatchItems(batch, ids), progress: (batch, reached, done) => batches.noteCancelProgress(batch, reached, done, false) },
    removeUnaccepted: (batch, max) => batches.removeUnaccepted(batch, max),
  });
  feeder.start();
  const hub = new EventHub(subscriber);
  const webhooks = await startWebhooks(config, keys, connection, hub, logger, metrics);
  const metricsServer = config.METRICS_PORT > 0 ? await startMetricsServer(metrics, config.METRICS_PORT, config.METRICS_HOST) : undefined;
  const stopCancellations = await listenForCancellations(hub, keys, generate);
  logger.info('worker started', { generator: provider.name, storage: config.STORAGE, concurrency: config.WORKER_CONCURRENCY, cpu: config.CPU_CONCURRENCY, prefix: config.QUEUE_PREFIX, ...(metricsServer ? { metricsPort: config.METRICS_PORT } : {}) });

  // a backend handed in belongs to whoever made it
  const closeStorage = async () => {
    if (!overrides.storage) await storage.close?.().catch(() => undefined);
  };
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await feeder.stop().catch(() => undefined);
      stopSweepSchedule();
      metricsServer?.close();
      metricsServer?.closeAllConnections();
      const drained = Promise.all([webhooks.stopDispatching(), generate.close(), maintenance.close(), webhooks.worker.close()]).then(() => 'drained' as const);
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), config.SHUTDOWN_TIMEOUT_MS).unref());
      if ((await Promise.race([drained, timeout])) === 'timeout') {
        // BullMQ keeps waiting on the first close; cutting the connections ends it. The locks of
        // jobs still running expire and another worker recovers them from their checkpoints.
        logger.warn('shutdown timeout: leaving active jobs to be recovered by another worker', { timeoutMs: config.SHUTDOWN_TIMEOUT_MS });
        drained.catch(() => undefined);
        for (const c of [connection, storeRedis, subscriber]) c.disconnect();
        webhooks.disconnect();
        await closeStorage();
        return;
      }
      await stopCancellations().catch(() => undefined);
      await Promise.all([generateQueue.close(), webhooksQueue.close(), maintenanceQueue.close(), webhooks.close()].map((p) => p.catch(() => undefined)));
      await Promise.all([connection.quit(), storeRedis.quit(), subscriber.quit()].map((p) => p.catch(() => undefined)));
      await closeStorage();
      logger.info('worker stopped');
    })());

  return { workers: [generate, maintenance, webhooks.worker], metrics, close };
}
