import { Redis } from 'ioredis';
import { startRedisServer, type RedisServer } from './support/processes';
import { postJson, startStack, type Stack } from './support/stack';

describe('a Redis that is connected but not answering', () => {
  let redis: RedisServer;
  let stack: Stack;
  let admin: Redis;
  beforeAll(async () => {
    redis = await startRedisServer();
    stack = await startStack({ name: 'paused', worker: false, redisUrl: redis.url });
    admin = new Redis(redis.url);
  });
  afterAll(async () => {
    await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined);
    await admin.quit();
    await stack.close();
    await redis.destroy();
  });

  it('gets 503 problem+json within the command timeout, not a hanging request, and recovers', async () => {
    await admin.call('CLIENT', 'PAUSE', '5000', 'ALL');
    const t0 = Date.now();
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'during a pause' });
    const elapsed = Date.now() - t0;
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/problem\+json/);
    expect(res.headers.get('retry-after')).toBeTruthy();
    expect(elapsed).toBeLessThan(4000);
    const ready = await fetch(`${stack.baseUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await ready.json()) as { status: number }).status).toBe(503);
    await admin.call('CLIENT', 'UNPAUSE');
    const after = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'after the pause' });
    expect(after.status).toBe(202);
  });
});
