import { Redis, type RedisOptions } from 'ioredis';

/**
 * - `worker`: blocking BullMQ connections; commands wait through outages and resume.
 * - `producer`: the API's connection; fails at once while Redis is away so requests get 503, not a hang.
 * - `subscriber`: pub/sub; waits through outages and re-subscribes by itself.
 */
export type RedisRole = 'worker' | 'producer' | 'subscriber';

export function createRedis(url: string, role: RedisRole, name?: string, extra: Partial<RedisOptions> = {}): Redis {
  const options: RedisOptions = {
    connectionName: name,
    // exponential reconnect, capped: a restarted Redis is picked up within ~2 s
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    connectTimeout: 5000,
  };
  if (role === 'producer') {
    // a Redis that is connected but not answering (paused, failing over) must not hang requests either
    Object.assign(options, { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000 });
  } else {
    Object.assign(options, { enableOfflineQueue: true, maxRetriesPerRequest: null });
  }
  const redis = new Redis(url, { ...options, ...extra });
  // connection errors surface through status and command failures; an unhandled 'error' would crash
  redis.on('error', () => undefined);
  return redis;
}
