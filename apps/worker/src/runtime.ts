import { createLogger, createRedis, EventHub, FsStorage, GenerationStore, JOBS, keysFor, QUEUES, type GeneratorProvider, type Logger, type Storage } from '@imagegen/shared';
import { Queue, type Worker } from 'bullmq';
import type { WorkerConfig } from './config';
import { listenForCancellations } from './generate/cancellations';
import { createGenerateWorker } from './generate/generate.worker';
import { FileRetentionService } from './maintenance/file-retention.service';
import { createMaintenanceWorker } from './maintenance/sweep-files.worker';
import { GenerationService } from './generate/generation.service';
import { Semaphore } from './images/semaphore';
import { createProvider } from './providers';
import { startWebhooks } from './webhooks/webhooks.runtime';

export interface WorkerRuntime {
  workers: Worker[];
  /** Stops taking jobs, lets active ones finish (up to the shutdown timeout), closes connections. */
  close(): Promise<void>;
}

export interface WorkerOverrides {
  /** Another storage backend (object storage, or a fault-injecting one in tests). */
  storage?: Storage;
  /** Another generator (benchmarks measure the pipeline around a fixed-cost one). */
  provider?: GeneratorProvider;
}

/** Builds every consumer of the worker process from typed config. */
export async function startWorkerRuntime(
  config: WorkerConfig,
  logger: Logger = createLogger('worker', config.LOG_LEVEL),
  overrides: WorkerOverrides = {},
): Promise<WorkerRuntime> {
  const keys = keysFor(config.QUEUE_PREFIX);
  const connection = createRedis(config.REDIS_URL, 'worker', 'imagegen-worker');
  const storeRedis = createRedis(config.REDIS_URL, 'worker', 'imagegen-worker-store');
  const subscriber = createRedis(config.REDIS_URL, 'subscriber', 'imagegen-worker-sub');
  const store = new GenerationStore(storeRedis, keys, config.RECORD_RETENTION_HOURS * 3600);
  const fsStorage = new FsStorage(config.DATA_DIR);
  const storage = overrides.storage ?? fsStorage;
  // files half-written by a worker killed mid-write; never shown, since records point at final names
  void fsStorage.sweepTemporary(10 * 60_000).then(
    (n) => n > 0 && logger.info('removed stale temporary files', { count: n }),
    () => undefined,
  );
  const generateQueue = new Queue(QUEUES.generate, { connection: storeRedis, prefix: config.QUEUE_PREFIX });
  generateQueue.on('error', (err) => logger.warn('queue error', { error: err.message }));
  const cpu = new Semaphore(config.CPU_CONCURRENCY);
  const provider = overrides.provider ?? createProvider(config, cpu);
  const service = new GenerationService(store, storage, provider, cpu, {
    timeoutMs: config.GENERATOR_TIMEOUT_MS,
    maxDownloadBytes: config.DOWNLOAD_MAX_BYTES,
    thumbnails: {
      sizes: config.THUMBNAIL_SIZES,
      format: config.THUMBNAIL_FORMAT,
      quality: config.THUMBNAIL_QUALITY,
      maxPixels: config.MAX_INPUT_PIXELS,
      placeholder: config.THUMBHASH,
    },
  });

  const generate = createGenerateWorker(service, store, generateQueue, logger, {
    connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: config.WORKER_CONCURRENCY,
    lockDurationMs: config.WORKER_LOCK_DURATION_MS,
    stalledIntervalMs: config.WORKER_STALLED_INTERVAL_MS,
    maxStalledCount: config.WORKER_MAX_STALLED_COUNT,
    backoff: { baseMs: config.GENERATOR_BACKOFF_MS, maxMs: config.GENERATOR_BACKOFF_MAX_MS, jitter: config.GENERATOR_RETRY_JITTER },
    ...(config.GENERATOR_RATE_LIMIT_MAX > 0 ? { rateLimit: { max: config.GENERATOR_RATE_LIMIT_MAX, duration: config.GENERATOR_RATE_LIMIT_WINDOW_MS } } : {}),
  });
  const maintenanceQueue = new Queue(QUEUES.maintenance, { connection: storeRedis, prefix: config.QUEUE_PREFIX });
  maintenanceQueue.on('error', (err) => logger.warn('queue error', { error: err.message }));
  // one scheduler whatever the number of workers: upserting it is idempotent
  await maintenanceQueue.upsertJobScheduler(
    JOBS.sweepFiles.name,
    { every: config.FILE_SWEEP_INTERVAL_MS },
    { name: JOBS.sweepFiles.name, data: {}, opts: { removeOnComplete: 100, removeOnFail: 100 } },
  );
  const maintenance = createMaintenanceWorker(new FileRetentionService(store, storage, logger), logger, { connection, prefix: config.QUEUE_PREFIX });
  const hub = new EventHub(subscriber);
  const webhooks = await startWebhooks(config, keys, connection, hub, logger);
  const stopCancellations = await listenForCancellations(hub, keys, generate);
  logger.info('worker started', { generator: provider.name, concurrency: config.WORKER_CONCURRENCY, cpu: config.CPU_CONCURRENCY, prefix: config.QUEUE_PREFIX });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      const drained = Promise.all([webhooks.stopDispatching(), generate.close(), maintenance.close(), webhooks.worker.close()]).then(() => 'drained' as const);
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), config.SHUTDOWN_TIMEOUT_MS).unref());
      if ((await Promise.race([drained, timeout])) === 'timeout') {
        // BullMQ keeps waiting on the first close; cutting the connections ends it. The locks of
        // jobs still running expire and another worker recovers them from their checkpoints.
        logger.warn('shutdown timeout: leaving active jobs to be recovered by another worker', { timeoutMs: config.SHUTDOWN_TIMEOUT_MS });
        drained.catch(() => undefined);
        for (const c of [connection, storeRedis, subscriber]) c.disconnect();
        webhooks.disconnect();
        return;
      }
      await stopCancellations().catch(() => undefined);
      await Promise.all([generateQueue.close(), maintenanceQueue.close(), webhooks.close()].map((p) => p.catch(() => undefined)));
      await Promise.all([connection.quit(), storeRedis.quit(), subscriber.quit()].map((p) => p.catch(() => undefined)));
      logger.info('worker stopped');
    })());

  return { workers: [generate, maintenance, webhooks.worker], close };
}
