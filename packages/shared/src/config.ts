import type { RedisConnection } from './redis';
import { z } from 'zod';

/** Env helpers: every value arrives as a string (or not at all); these turn it into typed config. An empty value counts as unset. */
const blankAsUnset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

/** Longest delay a Node timer can hold (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const intString = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

export const envInt = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(
    blankAsUnset,
    intString(min, max)
      .optional()
      .transform((v) => v ?? def),
  );

/** A whole number whose default depends on other settings: undefined when unset. */
export const envOptionalInt = (min = 0, max = Number.MAX_SAFE_INTEGER) => z.preprocess(blankAsUnset, intString(min, max).optional());

export const envNumber = (def: number, min = 0, max = Number.MAX_VALUE) =>
  z.preprocess(
    blankAsUnset,
    z
      .string()
      .trim()
      .regex(/^(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i, 'must be a number')
      .transform(Number)
      .pipe(z.number().min(min).max(max))
      .optional()
      .transform((v) => v ?? def),
  );

export const envBool = (def: boolean) =>
  z.preprocess(
    blankAsUnset,
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
      .optional()
      .transform((v) => (v === undefined ? def : v === 'true' || v === '1' || v === 'yes')),
  );

export const envEnum = <const T extends readonly [string, ...string[]]>(values: T, def: T[number]) =>
  z.preprocess(blankAsUnset, z.enum(values, { error: `must be one of ${values.join(', ')}` }).default(def as never));

export const envString = (def: string) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? def : v));

export const envOptionalString = () =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

export const envIntList = (def: number[], min = 1, max = 10000) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return def;
      const parts = v.split(',').map((p) => Number(p.trim()));
      if (parts.some((n) => !Number.isInteger(n) || n < min || n > max)) {
        ctx.addIssue({ code: 'custom', message: `must be comma-separated whole numbers from ${min} to ${max}` });
        return z.NEVER;
      }
      return [...new Set(parts)].sort((a, b) => b - a);
    });

const BASE_URL_MESSAGE = 'must be an absolute http:// or https:// URL (a path prefix is fine; no query, fragment or credentials)';

/** An absolute http(s) URL, perhaps with a path prefix, kept without a trailing slash so `${base}/path` is always right. */
export const envBaseUrl = () =>
  envOptionalString().transform((v, ctx) => {
    if (v === undefined) return undefined;
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      ctx.addIssue({ code: 'custom', message: BASE_URL_MESSAGE });
      return z.NEVER;
    }
    if (!/^https?:$/.test(url.protocol) || !url.hostname || url.search || url.hash || url.username || url.password || /[?#]/.test(v)) {
      ctx.addIssue({ code: 'custom', message: BASE_URL_MESSAGE });
      return z.NEVER;
    }
    return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  });

/** `host:port,host:port` (IPv6 hosts in brackets), as Redis Cluster nodes and Sentinels are given. */
export const envHostPortList = () =>
  envOptionalString().transform((v, ctx) => {
    if (v === undefined) return undefined;
    const out: { host: string; port: number }[] = [];
    for (const part of v.split(',').map((p) => p.trim()).filter(Boolean)) {
      const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(part);
      const port = Number(m?.[3]);
      if (!m || port < 1 || port > 65535) {
        ctx.addIssue({ code: 'custom', message: 'must be comma-separated host:port pairs' });
        return z.NEVER;
      }
      out.push({ host: (m[1] ?? m[2]) as string, port });
    }
    return out.length ? out : undefined;
  });

/** Variables both processes read; each app's config module extends this. */
export const commonEnvShape = {
  NODE_ENV: envString('production'),
  REDIS_URL: envString('redis://127.0.0.1:6379').pipe(z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')),
  QUEUE_PREFIX: envString('imagegen').pipe(z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'may use letters, digits and _ . : - only')),
  /** A Redis Cluster's nodes (some or all), instead of REDIS_URL. */
  REDIS_CLUSTER_NODES: envHostPortList(),
  /** Sentinels watching the master to use, instead of REDIS_URL. */
  REDIS_SENTINELS: envHostPortList(),
  REDIS_SENTINEL_NAME: envString('mymaster'),
  PORT: envInt(3000, 0, 65535),
  PUBLIC_BASE_URL: envBaseUrl(),
  DATA_DIR: envString('./data'),
  LOG_LEVEL: envEnum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], 'info'),
  /** `json` lines, `pretty` for a person, or `auto`: pretty when stdout is a terminal. */
  LOG_FORMAT: envEnum(['auto', 'json', 'pretty'], 'auto'),
  /** How long finished generation records (and their files) stay readable; fractions allowed. */
  RECORD_RETENTION_HOURS: envNumber(24 * 30, 1 / 3600, 24 * 365 * 10),
};

/**
 * Where Redis is, and the key prefix to write under. On a Redis Cluster every key of the project
 * (BullMQ's too) carries the prefix as one hash tag, `{imagegen}`, so each script and transaction
 * touches a single slot, as BullMQ requires.
 */
export function redisSettings(raw: { REDIS_URL: string; QUEUE_PREFIX: string; REDIS_CLUSTER_NODES?: { host: string; port: number }[] | undefined; REDIS_SENTINELS?: { host: string; port: number }[] | undefined; REDIS_SENTINEL_NAME: string }): { redis: RedisConnection; QUEUE_PREFIX: string } {
  if (raw.REDIS_CLUSTER_NODES && raw.REDIS_SENTINELS) throw new ConfigError(configProblemLine('REDIS_CLUSTER_NODES', 'set either REDIS_CLUSTER_NODES or REDIS_SENTINELS, not both'));
  if (raw.REDIS_CLUSTER_NODES) return { redis: { kind: 'cluster', nodes: raw.REDIS_CLUSTER_NODES, url: raw.REDIS_URL }, QUEUE_PREFIX: `{${raw.QUEUE_PREFIX}}` };
  if (raw.REDIS_SENTINELS) return { redis: { kind: 'sentinel', sentinels: raw.REDIS_SENTINELS, name: raw.REDIS_SENTINEL_NAME, url: raw.REDIS_URL }, QUEUE_PREFIX: raw.QUEUE_PREFIX };
  return { redis: { kind: 'single', url: raw.REDIS_URL }, QUEUE_PREFIX: raw.QUEUE_PREFIX };
}

/** Retry policy of generations: the API sets it on each job, workers apply it. */
export const generatorEnvShape = {
  GENERATOR_MAX_ATTEMPTS: envInt(5, 1, 100),
  GENERATOR_BACKOFF_MS: envInt(2000, 0, MAX_TIMER_MS),
};

/** Webhook settings both processes read: the API signs nothing but hands out secrets and checks URLs. */
export const webhookEnvShape = {
  /** Master secret of every tenant's signing secret; unset: one is made and kept in Redis. */
  WEBHOOK_SECRET: envOptionalString(),
  /** Lets webhooks target loopback and private addresses (the SSRF guard is on by default). */
  WEBHOOK_ALLOW_PRIVATE: envBool(false),
};

/** Shorter master secrets are taken, with a warning at start. */
const MIN_MASTER_SECRET_CHARS = 16;

/**
 * The warning a short WEBHOOK_SECRET earns: a tenant knows its own signing secret, which is
 * derived from the master, and could try every short master offline, then sign as the service
 * to other tenants' receivers. Undefined when there is nothing to warn of.
 */
export function weakWebhookSecretWarning(secret: string | undefined): string | undefined {
  if (secret === undefined || secret.length >= MIN_MASTER_SECRET_CHARS) return undefined;
  return `WEBHOOK_SECRET is shorter than ${MIN_MASTER_SECRET_CHARS} characters: tenants' signing secrets could be guessed from their own; use 32 or more random characters (or leave it unset to have one made)`;
}

/** Where originals and thumbnails live; the API and every worker need the same values. */
export const storageEnvShape = {
  STORAGE: envEnum(['fs', 's3'], 'fs'),
  /** The bucket; required when STORAGE=s3. */
  S3_BUCKET: envOptionalString().pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/, 'must be a bucket name (letters, digits, . _ -)')
      .optional(),
  ),
  /** An S3-compatible endpoint (MinIO, R2, ...); unset: AWS S3 of S3_REGION. */
  S3_ENDPOINT: envBaseUrl(),
  S3_REGION: envString('us-east-1').pipe(z.string().regex(/^[a-z0-9-]+$/, 'must be a region name such as us-east-1')),
  /** `http://endpoint/bucket/key` instead of `http://bucket.endpoint/key` (most self-hosted stores want it). */
  S3_FORCE_PATH_STYLE: envBool(false),
  /** When set, file URLs point here (a CDN or a public bucket) and the API never serves the bytes. */
  S3_PUBLIC_BASE_URL: envBaseUrl(),
};

type StorageEnv = { STORAGE: 'fs' | 's3'; S3_BUCKET?: string | undefined; S3_PUBLIC_BASE_URL?: string | undefined };

/** Cross-field rules of the storage settings, for an app schema's superRefine. */
export function refineStorageEnv(c: StorageEnv, ctx: z.RefinementCtx): void {
  if (c.STORAGE === 's3' && !c.S3_BUCKET) ctx.addIssue({ code: 'custom', path: ['S3_BUCKET'], message: 'required when STORAGE=s3' });
  if (c.STORAGE !== 's3' && c.S3_PUBLIC_BASE_URL) ctx.addIssue({ code: 'custom', path: ['S3_PUBLIC_BASE_URL'], message: 'only applies when STORAGE=s3' });
}

/**
 * The base every file URL starts with, computed once: the API's `/files` route, or the object
 * store's public address when it serves the files itself.
 */
export function resolveFilesBaseUrl(publicBaseUrl: string, s3PublicBaseUrl: string | undefined): string {
  return s3PublicBaseUrl ?? `${publicBaseUrl}/files`;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** One line that stands alone: `Invalid configuration: NAME: reason`. Values are never repeated (they may be secrets). */
export function configProblemLine(name: string, reason: string): string {
  return `Invalid configuration: ${name}: ${reason.replace(/\s*\n\s*/g, ' ')}`;
}

/** Parses the environment once; a bad value stops the process with one line per problem. */
export function parseEnv<T extends z.ZodType>(schema: T, env: Record<string, string | undefined>): z.output<T> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => configProblemLine(i.path.map(String).join('.') || '(environment)', i.message));
    throw new ConfigError([...new Set(lines)].join('\n'));
  }
  return result.data;
}

/** Retention in whole seconds, at least one. */
export function retentionSeconds(hours: number): number {
  return Math.max(1, Math.round(hours * 3600));
}

/** PUBLIC_BASE_URL (already normalised by its schema) falls back to http://localhost:$PORT. */
export function resolvePublicBaseUrl(publicBaseUrl: string | undefined, port: number): string {
  return publicBaseUrl ?? `http://localhost:${port}`;
}

/** The path prefix of a public base URL (`/imagegen` for `http://host/imagegen`), empty when there is none. */
export function publicPathPrefix(publicBaseUrl: string): string {
  return new URL(publicBaseUrl).pathname.replace(/\/+$/, '');
}
