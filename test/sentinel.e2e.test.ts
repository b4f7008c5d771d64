import { startRedisSentinel, type RedisSentinel } from './support/sentinel';
import { postJson, startStack, type Stack } from './support/stack';

describe('through Redis Sentinel', () => {
  let sentinel: RedisSentinel;
  let stack: Stack;
  beforeAll(async () => {
    sentinel = await startRedisSentinel();
    // REDIS_URL points nowhere: every connection must find the master through the Sentinel
    stack = await startStack({
      name: 'sentinel',
      redisUrl: sentinel.master.url,
      env: { REDIS_URL: 'redis://127.0.0.1:1', REDIS_SENTINELS: sentinel.sentinels, REDIS_SENTINEL_NAME: sentinel.name },
    });
  }, 30_000);
  afterAll(async () => {
    await stack?.close();
    await sentinel?.destroy();
  });

  it('finds the master and runs a generation to the end', async () => {
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'watched over', style: 'VECTOR_IMAGE', size: 'SQUARE' }, { Prefer: 'wait=30' });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('completed');
    expect(await stack.redis.exists(`${stack.prefix}:gen:${res.body.id}`)).toBe(1);
  });
});
