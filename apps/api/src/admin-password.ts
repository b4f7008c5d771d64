import { randomBytes } from 'node:crypto';
import { createRedis, keysFor, type Logger } from '@imagegen/shared';
import type { ApiConfig } from './config';

/** How long one try waits for Redis before it gives up (and is logged; the API tries again). */
export const ADMIN_PASSWORD_WAIT_MS = 30_000;

/**
 * The operators' password: ADMIN_PASSWORD, or else one made once and kept in Redis so every API
 * process agrees on it. The process that makes it logs it; the others read it. It stays until
 * its key is deleted (a new one is then made at the next start).
 */
export async function resolveAdminPassword(config: Pick<ApiConfig, 'ADMIN_PASSWORD' | 'ADMIN_USER' | 'REDIS_URL' | 'QUEUE_PREFIX' | 'redis'>, logger: Logger, waitMs = ADMIN_PASSWORD_WAIT_MS): Promise<string> {
  if (config.ADMIN_PASSWORD) return config.ADMIN_PASSWORD;
  const key = keysFor(config.QUEUE_PREFIX).adminPassword();
  // a short-lived connection of its own that fails fast; retried below until the deadline
  const redis = createRedis(config.redis, 'producer', 'imagegen-api-admin');
  let lastError = 'no answer';
  redis.on('error', (err: Error) => (lastError = err.message));
  const deadline = Date.now() + waitMs;
  try {
    for (let delay = 100; Date.now() < deadline; delay = Math.min(delay * 2, 2000)) {
      if (await ready(redis, Math.min(delay, deadline - Date.now()))) {
        try {
          const candidate = randomBytes(18).toString('base64url');
          if ((await redis.set(key, candidate, 'NX')) === 'OK') {
            logger.warn('ADMIN_PASSWORD is not set: generated one, kept in Redis for every API process until deleted', { adminUser: config.ADMIN_USER, adminPassword: candidate, redisKey: key });
            return candidate;
          }
          const kept = await redis.get(key);
          if (kept) {
            logger.info('ADMIN_PASSWORD is not set: using the one kept in Redis', { adminUser: config.ADMIN_USER, redisKey: key });
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
    redis.disconnect();
  }
  throw new Error(`Redis at ${redisAddress(config.REDIS_URL)} did not answer within ${Math.round(waitMs / 1000)} s (${lastError.split('\n')[0]}); it keeps the shared admin password: check REDIS_URL, or set ADMIN_PASSWORD`);
}

/**
 * The password without holding the API back: ADMIN_PASSWORD at once, else resolved in the
 * background, tried again for as long as Redis does not answer, so that the process serves
 * meanwhile (/healthz, /readyz, 503s); until it is known the admin routes answer 503.
 */
export function adminPasswordInBackground(config: Parameters<typeof resolveAdminPassword>[0], logger: Logger): () => string | undefined {
  let known = config.ADMIN_PASSWORD || undefined;
  if (known === undefined) {
    void (async () => {
      while (known === undefined) {
        try {
          known = await resolveAdminPassword(config, logger);
        } catch (err) {
          logger.error(`${(err as Error).message}; the admin routes answer 503 until it does`);
        }
      }
    })();
  }
  return () => known;
}

/** Whether the connection is (or becomes, within `ms`) ready for commands. */
function ready(redis: ReturnType<typeof createRedis>, ms: number): Promise<boolean> {
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
