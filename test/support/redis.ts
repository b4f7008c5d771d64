import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix of this test run alone, so tests never touch other data. */
export function testPrefix(name: string): string {
  return `igtest-${name}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export function plainRedis(url = REDIS_URL): Redis {
  return new Redis(url, { maxRetriesPerRequest: 2, lazyConnect: false });
}

/**
 * A connection in MONITOR mode, open once Redis is monitoring. Other clients' commands that arrive
 * with MONITOR's own reply, or after the connection is closed, answer no command of it: ioredis
 * reports each as an error, which redis.monitor() would leave unhandled (the test then fails
 * whenever anything else uses the same Redis).
 */
export async function openMonitor(redis: Redis): Promise<Redis> {
  const monitor = redis.duplicate({ monitor: true, lazyConnect: true });
  monitor.on('error', () => undefined);
  const monitoring = new Promise((resolve) => monitor.once('monitoring', resolve));
  await monitor.connect();
  await monitoring;
  return monitor;
}

/** Every key under `prefix` (on a Cluster client, on every master). */
export async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  const nodes = 'nodes' in redis && typeof redis.nodes === 'function' ? (redis.nodes as (role: string) => Redis[])('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      out.push(...batch);
    } while (cursor !== '0');
  }
  return out.sort();
}

export async function deleteUnder(redis: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(redis, prefix);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
}
