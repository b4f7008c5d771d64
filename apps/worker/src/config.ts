import os from 'node:os';
import { z } from 'zod';
import { commonEnvShape, webhookEnvShape, envBool, envEnum, envInt, envOptionalInt, envIntList, envNumber, envOptionalString, envString, generatorEnvShape, MAX_TIMER_MS, MAX_USAGE_RETENTION_DAYS, parseEnv, redisSettings, refineStorageEnv, resolveFilesBaseUrl, resolvePublicBaseUrl, storageEnvShape } from '@imagegen/shared';

/** Every variable a worker reads. */
export const workerEnvShape = {
  ...commonEnvShape,
  ...generatorEnvShape,
  ...webhookEnvShape,
  ...storageEnvShape,
  GENERATOR: envEnum(['builtin', 'aistudios', 'openai'], 'builtin'),
  GENERATOR_URL: envOptionalString().pipe(z.url({ protocol: /^https?$/ }).optional()),
  GENERATOR_API_KEY: envOptionalString(),
  GENERATOR_MODEL: envString('gpt-image-1'),
  GENERATOR_TIMEOUT_MS: envInt(120_000, 1, MAX_TIMER_MS),
  GENERATOR_BACKOFF_MAX_MS: envInt(5 * 60_000, 1, MAX_TIMER_MS),
  /** Generation attempts started per window, across every worker (0 = no limit); each makes at most one upstream call. */
  GENERATOR_RATE_LIMIT_MAX: envInt(0, 0),
  GENERATOR_RATE_LIMIT_WINDOW_MS: envInt(1000, 1, MAX_TIMER_MS),
  DOWNLOAD_MAX_BYTES: envInt(50 * 1024 * 1024, 1024),
  /** Paid-for bytes kept in Redis while the store is down, every worker's together (MiB). */
  STORAGE_SPOOL_MAX_MB: envInt(256, 0),
  /** Largest image (width × height) ever decoded; guards against decompression bombs. */
  MAX_INPUT_PIXELS: envInt(8192 * 8192, 1),
  /** Generations in flight per worker process: mostly waiting on the network. */
  WORKER_CONCURRENCY: envInt(32, 1, 10_000),
  /** Images decoded/encoded at once per process: CPU-bound. One more than the cores: each image has single-threaded phases (decode, placeholder) that would leave a core idle. */
  CPU_CONCURRENCY: envInt(Math.max(1, os.availableParallelism()) + 1, 1, 64),
  WORKER_LOCK_DURATION_MS: envInt(30_000, 1000, MAX_TIMER_MS),
  WORKER_STALLED_INTERVAL_MS: envInt(30_000, 500, MAX_TIMER_MS),
  WORKER_MAX_STALLED_COUNT: envInt(2, 0, 100),
  THUMBNAIL_SIZES: envIntList([1024, 512, 256], 16, 4096),
  THUMBNAIL_FORMAT: envEnum(['webp', 'avif', 'jpeg', 'png'], 'webp'),
  THUMBNAIL_QUALITY: envInt(80, 1, 100),
  THUMBHASH: envBool(true),
  SHUTDOWN_TIMEOUT_MS: envInt(60_000, 0, MAX_TIMER_MS),
  /** How often the maintenance sweep runs: retention (records, files, finished jobs) and orphaned records. */
  MAINTENANCE_INTERVAL_MS: envInt(10 * 60_000, 1000, MAX_TIMER_MS),
  /** An unfinished record whose job is gone is ended only once it is this old (its job may still be on its way). */
  ORPHAN_MIN_AGE_MS: envInt(60_000, 0, MAX_TIMER_MS),
  /** Days of per-tenant usage counters kept; older days are dropped by the maintenance sweep. */
  USAGE_RETENTION_DAYS: envInt(90, 1, MAX_USAGE_RETENTION_DAYS),
  /** Random spread on each retry delay (0.2 = ±20 %) so retries of many jobs do not align. */
  GENERATOR_RETRY_JITTER: envNumber(0.2, 0, 1),
  /** Batch items released to the generate queue and not finished yet, across every batch and worker: the fair-share window. */
  BATCH_FEED_WINDOW: envInt(256, 1, 100_000),
  /** How often the batch feeder refills the window. */
  BATCH_FEED_INTERVAL_MS: envInt(100, 10, 60_000),
  /** Webhook deliveries in flight per worker process (their own queue, apart from generations). */
  WEBHOOK_CONCURRENCY: envInt(50, 1, 1000),
  /** A delivery that gets no 2xx within this long is a failed attempt. */
  WEBHOOK_TIMEOUT_MS: envInt(10_000, 100, 120_000),
  /** Factor on the retry schedule (0.001 turns hours into seconds). */
  WEBHOOK_RETRY_SCALE: envNumber(1, 0, 100),
  /** Deliveries in flight to one endpoint host (host:port), across every worker. */
  WEBHOOK_MAX_IN_FLIGHT_PER_HOST: envInt(10, 1, 1000),
  /** Consecutive failures (timeouts, connection errors, 429, 5xx) that open a host's circuit. */
  WEBHOOK_CIRCUIT_FAILURES: envInt(20, 1, 100_000),
  /** How long an open circuit holds that host's deliveries back before they are tried again; unset: 30 s times WEBHOOK_RETRY_SCALE (at least 100 ms). */
  WEBHOOK_CIRCUIT_OPEN_MS: envOptionalInt(100, MAX_TIMER_MS),
  /** Outbox entries read by a worker that died are taken over after this long. */
  WEBHOOK_DISPATCH_CLAIM_IDLE_MS: envInt(30_000, 100, MAX_TIMER_MS),
  /** Delay before this worker starts dispatching the outbox. */
  WEBHOOK_DISPATCH_START_DELAY_MS: envInt(0, 0, MAX_TIMER_MS),
  /** This worker's own Prometheus port (`GET /metrics`); 0 turns it off. */
  METRICS_PORT: envInt(0, 0, 65535),
  /** Address the metrics port listens on. */
  METRICS_HOST: envString('0.0.0.0'),
};

const workerEnvSchema = z.object(workerEnvShape).superRefine(
  (c, ctx) => {
    if (c.GENERATOR === 'openai' && !c.GENERATOR_API_KEY) ctx.addIssue({ code: 'custom', path: ['GENERATOR_API_KEY'], message: 'required when GENERATOR=openai' });
    refineStorageEnv(c, ctx);
  },
  // also when other settings are bad: every problem is named at once
  { when: () => true },
);

export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;

/** How long an open circuit lasts at WEBHOOK_RETRY_SCALE 1. */
const DEFAULT_CIRCUIT_OPEN_MS = 30_000;

const DEFAULT_GENERATOR_URLS = {
  builtin: undefined,
  aistudios: 'https://api.aistudios.com/api/odin/v3/tools/image-generator',
  openai: 'https://api.openai.com/v1/images/generations',
} as const;

export function loadWorkerConfig(env: Record<string, string | undefined> = process.env) {
  const raw = parseEnv(workerEnvSchema, env);
  const publicBaseUrl = resolvePublicBaseUrl(raw.PUBLIC_BASE_URL, raw.PORT);
  return {
    ...raw,
    ...redisSettings(raw),
    PUBLIC_BASE_URL: publicBaseUrl,
    /** Where file URLs start (webhook bodies carry them). */
    filesBaseUrl: resolveFilesBaseUrl(publicBaseUrl, raw.S3_PUBLIC_BASE_URL),
    /** Set here, not guessed: otherwise the API's own (published in Redis) is used once read. */
    filesBaseUrlGiven: raw.PUBLIC_BASE_URL !== undefined || raw.S3_PUBLIC_BASE_URL !== undefined,
    GENERATOR_URL: raw.GENERATOR_URL ?? DEFAULT_GENERATOR_URLS[raw.GENERATOR],
    // a failing host is held back on the retry schedule's own clock: a scaled-down schedule (tests) is not stuck behind a full-length circuit
    WEBHOOK_CIRCUIT_OPEN_MS: raw.WEBHOOK_CIRCUIT_OPEN_MS ?? Math.max(100, Math.round(DEFAULT_CIRCUIT_OPEN_MS * raw.WEBHOOK_RETRY_SCALE)),
  };
}
