import { Redis } from 'ioredis';
import { eventually } from './support/net';
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

describe('through Redis Sentinel, failing over', () => {
  const name = 'imagegen-failover';
  let sentinel: RedisSentinel;
  let stack: Stack;
  let promoted: Redis;
  beforeAll(async () => {
    sentinel = await startRedisSentinel(name, { replica: true });
    // the test's own client reads the replica: the master once the failover is done
    stack = await startStack({
      name: 'sentinel-failover',
      worker: false,
      redisUrl: sentinel.replica!.url,
      env: { REDIS_URL: 'redis://127.0.0.1:1', REDIS_SENTINELS: sentinel.sentinels, REDIS_SENTINEL_NAME: name },
    });
    promoted = new Redis(sentinel.replica!.url);
  }, 40_000);
  afterAll(async () => {
    promoted?.disconnect();
    await stack?.close();
    await sentinel?.destroy();
  });

  it('writes go to the new master as soon as the Sentinel switches, not once the old one steps down', async () => {
    expect(await sentinel.call('failover', name)).toBe('OK');
    await eventually(async () => (Number(((await sentinel.call('get-master-addr-by-name', name)) as string[])[1]) === sentinel.replica!.port ? true : undefined), 15_000);
    const switchedAt = Date.now();
    const landedAt = await eventually(
      async () => {
        const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'after the switch' });
        if (res.status !== 202) return undefined;
        return (await promoted.exists(`${stack.prefix}:gen:${res.body.id}`)) === 1 ? Date.now() : undefined;
      },
      20_000,
      100,
    );
    // before: about 10 s, until the old master was told to follow the new one and dropped its
    // clients; what they wrote to it meanwhile was lost when it resynced
    expect(landedAt - switchedAt).toBeLessThan(4000);
  }, 40_000);
});
