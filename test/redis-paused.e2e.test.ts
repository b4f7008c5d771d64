import { Redis } from 'ioredis';
import { spawnApi, startRedisServer, type ApiProcess, type RedisServer } from './support/processes';
import { eventually, freePort } from './support/net';
import { ADMIN, ADMIN_AUTH, postJson, startStack, type Stack } from './support/stack';

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

  it('a create whose reply was lost answers 202 when it ran, and 503 only when it did not', async () => {
    const store = stack.api.store;
    const real = store.createWithJob.bind(store);
    const topic = `reply lost ${Date.now()}`;
    const mine = async () => ((await (await fetch(`${stack.baseUrl}/v1/generations?limit=100`)).json()) as { data: { id: string; request: { topic: string } }[] }).data.filter((g) => g.request.topic.startsWith(topic));
    try {
      // the script ran in Redis and its reply was lost (a command timeout, a dropped connection)
      store.createWithJob = async (...args) => {
        await real(...args);
        throw new Error('Command timed out');
      };
      const ran = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `${topic} ran` });
      // before: 503 with Retry-After for a generation that runs, and a client that retried as told had two
      expect([ran.status, ran.body.id]).toEqual([202, (await mine())[0]?.id]);
      // the script never reached Redis
      store.createWithJob = async () => {
        throw new Error('Command timed out');
      };
      const lost = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `${topic} lost` });
      expect([lost.status, lost.headers.get('retry-after')]).toEqual([503, '5']);
      expect((await mine()).map((g) => g.request.topic)).toEqual([`${topic} ran`]);
    } finally {
      store.createWithJob = real;
    }
  });

  it('a batch whose confirm reply was lost answers 202 and is kept, not torn down while it is fed', async () => {
    const batches = stack.api.batches;
    const real = batches.confirm.bind(batches);
    try {
      batches.confirm = async (...args) => {
        await real(...args);
        throw new Error('Command timed out');
      };
      const res = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'confirmed after all' }, { topic: 'and me' }] });
      // before: 503, and the batch's records deleted under the feeder, its listing entry left behind
      expect(res.status).toBe(202);
      const got = await fetch(`${stack.baseUrl}/v1/batches/${res.body.id}`);
      expect([got.status, ((await got.json()) as { total: number }).total]).toEqual([200, 2]);
      const listed = (await (await fetch(`${stack.baseUrl}/v1/batches`)).json()) as { data: { id: string }[] };
      expect(listed.data.map((b) => b.id)).toContain(res.body.id);
    } finally {
      batches.confirm = real;
    }
  });
});

describe('a Redis that does not answer from the start', () => {
  let api: ApiProcess;
  let redis: RedisServer | undefined;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    api = await spawnApi({ name: 'api-no-redis', env: { REDIS_URL: `redis://127.0.0.1:${port}`, ADMIN_USER: ADMIN.user, ADMIN_PASSWORD: ADMIN.password } });
  });
  afterAll(async () => {
    await api?.kill();
    // a private server: its keys go with it
    await redis?.destroy();
  });

  it('still gets its metrics scraped, without the series read from Redis, and them too once Redis is there', async () => {
    const t0 = Date.now();
    const scrape = await fetch(`${api.baseUrl}/metrics`, { headers: ADMIN_AUTH, signal: AbortSignal.timeout(30_000) });
    const text = await scrape.text();
    expect(scrape.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(text).toMatch(/^process_cpu_user_seconds_total\{[^}]*\} \d/m);
    expect(text).not.toMatch(/^imagegen_queue_jobs\{/m);
    expect(text).not.toMatch(/^imagegen_webhook_outbox_events\{/m);
    // unknown, not 0 (before: 0, which an alert on it reads as an empty outbox)
    expect(text).not.toMatch(/^imagegen_webhook_outbox_oldest_seconds/m);
    redis = await startRedisServer({ port });
    await eventually(async () => {
      const back = await (await fetch(`${api.baseUrl}/metrics`, { headers: ADMIN_AUTH })).text();
      return /^imagegen_queue_jobs\{[^}]*queue="generate"[^}]*\} \d/m.test(back) || undefined;
    }, 20_000);
  });
});
