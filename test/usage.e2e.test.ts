import { keysFor, RecordRetention } from '@imagegen/shared';
import { ADMIN, getJson, postJson, startStack, type Stack } from './support/stack';

const basic = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;
const auth = { Authorization: 'Bearer key-u' };

describe('usage per tenant', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'usage', worker: false, env: { API_KEYS: 'u:key-u,other:key-other' } });
  });
  afterAll(() => stack.close());

  it('counts what was done, by day and status: generations, upstream calls, bytes stored', async () => {
    // one cancelled while queued (no worker yet): no upstream call
    const queued = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'cancel me' }, auth);
    expect((await fetch(`${stack.baseUrl}/v1/generations/${queued.body.id}`, { method: 'DELETE', headers: auth })).status).toBe(200);
    await stack.startWorker();
    const done = [];
    for (const topic of ['first', 'second']) {
      const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic }, { ...auth, Prefer: 'wait=30' });
      expect(res.body.status).toBe('completed');
      done.push(res.body);
    }
    // another tenant's work is not ours
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'theirs' }, { Authorization: 'Bearer key-other', Prefer: 'wait=30' })).body.status).toBe('completed');

    const bytes = done.reduce((sum, g) => sum + g.result.image.bytes + g.result.thumbnails.reduce((s: number, t: { bytes: number }) => s + t.bytes, 0), 0);
    const [secs] = await stack.redis.time();
    const today = new Date(Number(secs) * 1000).toISOString().slice(0, 10);
    const usage = await getJson(`${stack.baseUrl}/v1/usage`, auth);
    expect(usage.status).toBe(200);
    expect(usage.body.data).toEqual([{ date: today, generations: { completed: 2, failed: 0, cancelled: 1 }, upstreamCalls: 2, bytesStored: bytes }]);
    const admin = await getJson(`${stack.baseUrl}/admin/tenants/u/usage`, { Authorization: basic });
    expect(admin.body.data).toEqual(usage.body.data);
    expect((await getJson(`${stack.baseUrl}/admin/tenants/other/usage`, { Authorization: basic })).body.data[0].generations.completed).toBe(1);
    expect((await getJson(`${stack.baseUrl}/admin/tenants/u/usage`)).status).toBe(401);
    expect((await getJson(`${stack.baseUrl}/v1/usage?days=0`, auth)).status).toBe(400);
  });

  it('old days are dropped by the retention sweep, recent ones kept', async () => {
    const key = keysFor(stack.prefix).usage('u');
    await stack.redis.hset(key, '2001-01-01:upstreamCalls', '7');
    const retention = new RecordRetention(stack.redis, keysFor(stack.prefix));
    expect(await retention.trimUsage(await retention.now(), 90)).toBe(1);
    const left = await stack.redis.hkeys(key);
    expect(left.some((f) => f.startsWith('2001'))).toBe(false);
    expect(left.length).toBeGreaterThan(0);
    expect(await stack.redis.ttl(key)).toBeGreaterThan(0);
  });
});
