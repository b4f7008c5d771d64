import { Redis } from 'ioredis';
import { startRedisCluster, type RedisCluster } from './support/cluster';
import { FakeUpstream } from './support/fake-upstream';
import { eventually } from './support/net';
import { keysUnder } from './support/redis';
import { getJson, postJson, startStack, type Stack } from './support/stack';
import { WebhookReceiver } from './support/webhook-receiver';

/** The main end-to-end cases on a local 3-master Redis Cluster. */
describe('on a Redis Cluster', () => {
  let cluster: RedisCluster;
  let upstream: FakeUpstream;
  let receiver: WebhookReceiver;
  let stack: Stack;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    upstream = await FakeUpstream.start();
    receiver = await WebhookReceiver.start();
    stack = await startStack({
      name: 'cluster',
      cluster,
      env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, WEBHOOK_ALLOW_PRIVATE: 'true', GENERATOR_MAX_ATTEMPTS: '3', GENERATOR_BACKOFF_MS: '50' },
    });
    receiver.secrets = [(await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret];
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
    await upstream?.close();
    await cluster?.destroy();
  });

  const terminal = (id: string) =>
    eventually(async () => {
      const g = (await getJson(`${stack.baseUrl}/v1/generations/${id}`)).body;
      return ['completed', 'failed', 'cancelled'].includes(g.status) ? g : undefined;
    });

  it('every key the project writes carries one hash tag, so scripts and transactions stay in one slot', async () => {
    expect(stack.prefix).toMatch(/^\{igtest-cluster-.+\}$/);
    const done = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'tagged' }, { Prefer: 'wait=30' });
    expect(done.body.status).toBe('completed');
    const keys = await keysUnder(stack.redis, stack.prefix);
    expect(keys.length).toBeGreaterThan(5);
    // and they all live on the one master that owns that slot
    const owners = new Set<number>();
    for (const server of cluster.servers) {
      const client = new Redis(server.port, '127.0.0.1');
      if ((await client.dbsize()) > 0) owners.add(server.port);
      client.disconnect();
    }
    expect(owners.size).toBe(1);
  });

  it('submit and wait, then the files and the list', async () => {
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'a lighthouse', size: 'SQUARE' }, { Prefer: 'wait=30' });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('completed');
    expect((await fetch(res.body.result.image.url)).status).toBe(200);
    const list = await getJson(`${stack.baseUrl}/v1/generations?status=completed&limit=5`);
    expect(list.body.data.map((g: { id: string }) => g.id)).toContain(res.body.id);
  });

  it('the seed endpoint answers with the stored image', async () => {
    const res = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'seed on a cluster' });
    expect(res.status).toBe(200);
    expect((await fetch(res.body.downloadUrl)).headers.get('content-type')).toBe('image/png');
  });

  it('events stream until the end', async () => {
    upstream.enqueue({ kind: 'ok', delayMs: 300 });
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'streamed' });
    const res = await fetch(`${stack.baseUrl}/v1/generations/${created.body.id}/events`);
    const text = await res.text();
    expect(text).toMatch(/event: generation\.completed/);
  });

  it('retries after upstream errors and cancels a queued generation', async () => {
    upstream.enqueue({ kind: 'status', status: 503 }, { kind: 'ok' });
    const retried = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'flaky upstream' });
    const done = await terminal(retried.body.id);
    expect(done).toMatchObject({ status: 'completed', attempts: 2 });

    upstream.enqueue({ kind: 'hang' });
    const hanging = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'never mind' });
    await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/generations/${hanging.body.id}`)).body.status === 'active' ? true : undefined));
    const cancelled = await fetch(`${stack.baseUrl}/v1/generations/${hanging.body.id}`, { method: 'DELETE' });
    expect(cancelled.status).toBe(200);
    expect((await terminal(hanging.body.id)).status).toBe('cancelled');
  });

  it('idempotency: concurrent repeats make one generation', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => postJson(`${stack.baseUrl}/v1/generations`, { topic: 'once' }, { 'Idempotency-Key': 'cluster-1' })));
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
  });

  it('a webhook is delivered, verified', async () => {
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'hooked', webhook: { url: receiver.url('/cluster') } });
    await terminal(created.body.id);
    const got = await eventually(async () => (receiver.on('/cluster').length ? receiver.on('/cluster') : undefined));
    expect(got[0]!.payload?.type).toBe('generation.completed');
  });

  it('a batch runs to the end, its counts moved by the same scripts', async () => {
    const created = await postJson(`${stack.baseUrl}/v1/batches`, { items: Array.from({ length: 5 }, (_, i) => ({ topic: `batch item ${i}` })) });
    expect(created.status).toBe(202);
    const done = await eventually(async () => {
      const b = (await getJson(`${stack.baseUrl}/v1/batches/${created.body.id}`)).body;
      return b.status === 'completed' ? b : undefined;
    }, 30_000);
    expect(done.counts).toMatchObject({ completed: 5, queued: 0, active: 0 });
  });

  it('a batch is cancelled, its items a page per script', async () => {
    // the upstream holds the first items, so the rest are still waiting when the cancel comes
    upstream.enqueue({ kind: 'hang' }, { kind: 'hang' });
    const created = await postJson(`${stack.baseUrl}/v1/batches`, { items: Array.from({ length: 250 }, (_, i) => ({ topic: `cancelled item ${i}` })) });
    expect(created.status).toBe(202);
    const cancelled = await fetch(`${stack.baseUrl}/v1/batches/${created.body.id}`, { method: 'DELETE' });
    expect(cancelled.status).toBe(200);
    const body = (await cancelled.json()) as { status: string; counts: Record<string, number> };
    expect(body.counts.queued! + body.counts.active!).toBe(0);
    expect(body.counts.cancelled).toBeGreaterThan(200);
    expect(body.status).toBe('completed');
  });
});

describe('on a Redis Cluster whose master for our keys goes down', () => {
  let cluster: RedisCluster;
  let stack: Stack;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    stack = await startStack({ name: 'cluster-down', cluster, worker: false });
  }, 60_000);
  afterAll(async () => {
    await stack?.close().catch(() => undefined);
    await cluster?.destroy();
  });

  it('is answered 503 with Retry-After, never 500, and /readyz says so', async () => {
    expect((await fetch(`${stack.baseUrl}/readyz`)).status).toBe(200);
    // the master of the slot every key of ours is in (one hash tag)
    const admin = new Redis(cluster.servers[0]!.port, '127.0.0.1');
    const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', stack.prefix));
    const slots = (await admin.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
    admin.disconnect();
    const port = slots.find(([from, to]) => slot >= from && slot <= to)![2][1];
    await cluster.servers.find((s) => s.port === port)!.stop('sigkill');
    const seen = { readyz: new Set<number>(), list: new Set<number>(), submit: new Set<number>() };
    const until = Date.now() + 8000;
    let retryAfter: string | null = null;
    while (Date.now() < until) {
      seen.readyz.add((await fetch(`${stack.baseUrl}/readyz`)).status);
      const list = await fetch(`${stack.baseUrl}/v1/generations?limit=1`);
      seen.list.add(list.status);
      if (list.status === 503) retryAfter = list.headers.get('retry-after');
      seen.submit.add((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'while the master is down' })).status);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // before: /readyz stayed 200 (a PING to any node) and requests were answered 500 'Too many Cluster redirections'
    expect({ readyz: [...seen.readyz], list: [...seen.list].filter((s) => s !== 503), submit: [...seen.submit].filter((s) => s !== 503) }).toEqual({ readyz: [503], list: [], submit: [] });
    expect(retryAfter).toBe('5');
  }, 60_000);
});
