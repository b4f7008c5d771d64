import { randomBytes } from 'node:crypto';
import { createRedis, keysFor, type Logger } from '@imagegen/shared';
import type { ApiConfig } from './config';

/** How long one try waits for Redis before it gives up (and is logged; the API tries again). */
export const ADMIN_PASSWORD_WAIT_MS = 30_000;

/** How often a process that learnt the password from Redis checks that it is still the one there. */
export const ADMIN_PASSWORD_CHECK_MS = 10_000;

type AdminRedis = ReturnType<typeof createRedis>;
type AdminConfig = Pick<ApiConfig, 'ADMIN_PASSWORD' | 'ADMIN_USER' | 'REDIS_URL' | 'QUEUE_PREFIX' | 'redis'>;

/** A connection of the password's own that fails fast (a missing Redis is retried by the caller, not queued). */
const adminRedis = (config: AdminConfig): AdminRedis => createRedis(config.redis, 'producer', 'imagegen-api-admin');

/**
 * The operators' password: ADMIN_PASSWORD, or else one made once and kept in Redis so every API
 * process agrees on it. The process that makes it logs it; the others read it. It stays until
 * its key is deleted (then the first process to look makes and logs a new one).
 * `known`: the one this process used so far (it is logged again only when it changed).
 */
export async function resolveAdminPassword(config: AdminConfig, logger: Logger, waitMs = ADMIN_PASSWORD_WAIT_MS, connection?: AdminRedis, known?: string): Promise<string> {
  if (config.ADMIN_PASSWORD) return config.ADMIN_PASSWORD;
  const key = keysFor(config.QUEUE_PREFIX).adminPassword();
  const redis = connection ?? adminRedis(config);
  let lastError = 'no answer';
  const onError = (err: Error) => (lastError = err.message);
  redis.on('error', onError);
  const deadline = Date.now() + waitMs;
  // the contract: a password made because none is set is logged at start (by the process that
  // makes it, once; the others read it from Redis, where it can be read again); in the message,
  // since the logger redacts fields named like secrets
  const announce = (password: string) => {
    logger.warn(`ADMIN_PASSWORD is not set: generated one, user ${config.ADMIN_USER}, password ${password}, kept in Redis for every API process until deleted${known ? ' (the one before was deleted or lost)' : ''}; read it again with: redis-cli GET ${key}`, { adminUser: config.ADMIN_USER, redisKey: key });
    return password;
  };
  // every password this call offered: a SET whose reply was lost (a timeout, a reconnect) may have kept one
  const offered = new Set<string>();
  try {
    for (let delay = 100; Date.now() < deadline; delay = Math.min(delay * 2, 2000)) {
      if (await ready(redis, Math.min(delay, deadline - Date.now()))) {
        try {
          const candidate = randomBytes(18).toString('base64url');
          offered.add(candidate);
          if ((await redis.set(key, candidate, 'NX')) === 'OK') return announce(candidate);
          const kept = await redis.get(key);
          if (kept && offered.has(kept)) return announce(kept);
          if (kept) {
            if (kept !== known) logger.info(`ADMIN_PASSWORD is not set: using the one kept in Redis${known ? ' (it changed)' : ''}`, { adminUser: config.ADMIN_USER, redisKey: key });
            return kept;
          }
          // deleted between the two commands: the next round makes one again
        } catch (err) {
          lastError = (err as Error).message;
          await new Promise((resolve) => setTimeout(resolve, Math.min(delay, Math.max(0, deadline - Date.now()))));
        }
      }
    }
  } finally {
    redis.off('error', onError);
    if (!connection) redis.disconnect();
  }
  throw new Error(`Redis at ${redisAddress(config.REDIS_URL)} did not answer within ${Math.round(waitMs / 1000)} s (${lastError.split('\n')[0]}); it keeps the shared admin password: check REDIS_URL, or set ADMIN_PASSWORD`);
}

/**
 * The password without holding the API back: ADMIN_PASSWORD at once, else resolved in the
 * background, tried again for as long as Redis does not answer, so that the process serves
 * meanwhile (/healthz, /readyz, 503s); until it is known the admin routes answer 503. Once
 * known it is checked again every `checkMs`: a key deleted (or lost with Redis's data) gets a
 * new password, made and logged by the first process to look, and every process adopts it.
 */
export function adminPasswordInBackground(config: AdminConfig, logger: Logger, checkMs = ADMIN_PASSWORD_CHECK_MS): (() => string | undefined) & { stop(): void } {
  let known = config.ADMIN_PASSWORD || undefined;
  let stopped = false;
  let wake = () => undefined as void;
  const redis = known === undefined ? adminRedis(config) : undefined;
  if (redis) {
    redis.on('error', () => undefined);
    void (async () => {
      while (!stopped) {
        try {
          known = await resolveAdminPassword(config, logger, ADMIN_PASSWORD_WAIT_MS, redis, known);
        } catch (err) {
          // a password already known stays in use while Redis is away
          if (!stopped) logger.error(`${(err as Error).message}; ${known === undefined ? 'the admin routes answer 503 until it does' : 'the password known so far stays in use'}`);
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, checkMs).unref();
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    })();
  }
  const stop = () => {
    stopped = true;
    wake();
    redis?.disconnect();
  };
  return Object.assign(() => known, { stop });
}

/** Whether the connection is (or becomes, within `ms`) ready for commands. */
function ready(redis: AdminRedis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(redis.status === 'ready'), Math.max(0, ms));
    redis.once('ready', onReady);
  });
}

/** host:port of a Redis URL, without credentials. */
function redisAddress(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 6379}`;
  } catch {
    return 'REDIS_URL';
  }
}
