import { createHash } from 'node:crypto';
import http from 'node:http';
import { newFileToken, newId } from '@imagegen/shared';
import { keysUnder } from './support/redis';
import { postJson, startStack, type Stack } from './support/stack';

describe('Idempotency-Key on POST /v1/generations', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'idem', worker: false, env: { API_KEYS: 'a:key-a,b:key-b' } });
  });
  afterAll(() => stack.close());
  const auth = (k: string) => ({ Authorization: `Bearer ${k}` });

  it('the same key and body return the same generation; nothing is enqueued twice', async () => {
    const body = { topic: 'once only', size: 'SQUARE' };
    const first = await postJson(`${stack.baseUrl}/v1/generations`, body, { ...auth('key-a'), 'Idempotency-Key': 'order-1' });
    const second = await postJson(`${stack.baseUrl}/v1/generations`, body, { ...auth('key-a'), 'Idempotency-Key': 'order-1' });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await stack.api.queues.generate.getJobCountByTypes('waiting', 'prioritized')).toBe(1);
  });

  it('two Idempotency-Key headers are refused, not joined into a key of their own', async () => {
    const before = await stack.api.queues.generate.getJobCountByTypes('waiting', 'prioritized');
    const answer = await new Promise<{ status: number; body: { detail?: string; errors?: unknown[] } }>((resolve, reject) => {
      const url = new URL(`${stack.baseUrl}/v1/generations`);
      // two header lines (fetch would join them into one)
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...auth('key-a'), 'Content-Type': 'application/json', 'Idempotency-Key': ['twice-a', 'twice-b'] } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ topic: 'keyed twice' }));
    });
    // before: 202, a generation under the key "twice-a, twice-b"
    expect(answer).toEqual({ status: 400, body: expect.objectContaining({ detail: 'Send one Idempotency-Key header, not several' }) });
    expect(await stack.api.queues.generate.getJobCountByTypes('waiting', 'prioritized')).toBe(before);
  });

  it('50 concurrent repeats make exactly one generation and one job', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, () => postJson(`${stack.baseUrl}/v1/generations`, { topic: 'racing' }, { ...auth('key-b'), 'Idempotency-Key': 'race-1' })),
    );
    expect(results.map((r) => r.status)).toEqual(results.map(() => 202));
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(49);
    const ids = await stack.redis.zrange(stack.api.keys.tenantGenerations('b'), '0', '-1');
    const racing: string[] = [];
    for (const id of ids) if ((await stack.api.store.get(id))?.request.topic === 'racing') racing.push(id);
    expect(racing).toEqual([results[0]!.body.id]);
    const jobs = await stack.api.queues.generate.getJobs(['waiting', 'prioritized']);
    // a job for a losing request would have no record at all
    const others = new Set(ids.filter((id) => !racing.includes(id)));
    expect(jobs.filter((j) => j.data.tenant === 'b' && !others.has(j.id!)).map((j) => j.id)).toEqual(racing);
  });

  it('member order is not part of the body: the same fields written in another order replay', async () => {
    const first = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'ordered', metadata: { order: 7, tags: { a: 1, b: [2, 3] } } }, { ...auth('key-a'), 'Idempotency-Key': 'order-3' });
    const again = await postJson(`${stack.baseUrl}/v1/generations`, { metadata: { tags: { b: [2, 3], a: 1 }, order: 7 }, topic: 'ordered' }, { ...auth('key-a'), 'Idempotency-Key': 'order-3' });
    expect(first.status).toBe(202);
    expect([again.status, again.body.id, again.headers.get('idempotent-replayed')]).toEqual([202, first.body.id, 'true']);
    const swapped = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'ordered', metadata: { order: 7, tags: { a: 1, b: [3, 2] } } }, { ...auth('key-a'), 'Idempotency-Key': 'order-3' });
    expect(swapped.status).toBe(409);
  });

  it('the same key with a different body is 409 and enqueues nothing', async () => {
    await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'first body' }, { ...auth('key-a'), 'Idempotency-Key': 'order-2' });
    const keysBefore = await keysUnder(stack.redis, stack.prefix);
    const clash = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'another body' }, { ...auth('key-a'), 'Idempotency-Key': 'order-2' });
    expect(clash.status).toBe(409);
    expect(clash.headers.get('content-type')).toMatch(/problem\+json/);
    expect(await keysUnder(stack.redis, stack.prefix)).toEqual(keysBefore);
  });

  it('keys belong to a tenant: another tenant’s identical key makes its own generation', async () => {
    const a = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'shared key' }, { ...auth('key-a'), 'Idempotency-Key': 'k-1' });
    const b = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'shared key' }, { ...auth('key-b'), 'Idempotency-Key': 'k-1' });
    expect(b.body.id).not.toBe(a.body.id);
  });

  it('a key that outlived its generation (its retention ended first) starts a new one', async () => {
    const body = { topic: 'outlived' };
    const first = await postJson(`${stack.baseUrl}/v1/generations`, body, { ...auth('key-a'), 'Idempotency-Key': 'order-old' });
    expect(first.status).toBe(202);
    // what the retention sweep leaves when the record's retention is shorter than its key's 24 h
    await stack.redis.del(stack.api.keys.generation(first.body.id));
    const again = await postJson(`${stack.baseUrl}/v1/generations`, body, { ...auth('key-a'), 'Idempotency-Key': 'order-old' });
    expect(again.status).toBe(202);
    expect(again.body.id).not.toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    const replay = await postJson(`${stack.baseUrl}/v1/generations`, body, { ...auth('key-a'), 'Idempotency-Key': 'order-old' });
    expect(replay.body.id).toBe(again.body.id);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
  });

  it('a key whose first request died before enqueueing is taken over, not stuck', async () => {
    // what a request leaves behind when it dies between writing its record and enqueueing the job
    const sha = (v: string) => createHash('sha256').update(v).digest('hex');
    // the digest is of the validated body in canonical form (members in sorted order)
    const parsed = { topic: 'orphaned', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE', priority: 'normal' };
    const idemKey = `${stack.prefix}:idem:a:${sha('order-9')}`;
    const dead = { id: newId('gen'), tenant: 'a', status: 'queued', stage: 'queued', progress: 0, request: { topic: 'orphaned', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' }, metadata: null, priority: 'normal', attempts: 0, fileToken: newFileToken() } as const;
    const made = await stack.api.store.create(dead, { provisionalSeconds: 600, idempotency: { key: idemKey, value: `${sha(JSON.stringify(parsed, Object.keys(parsed).sort()))}|${dead.id}`, ttlSeconds: 600 } });
    expect(made.outcome).toBe('created');
    // while it is young, a repeat gets it: its creator may just be slow
    const early = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'orphaned' }, { ...auth('key-a'), 'Idempotency-Key': 'order-9' });
    expect(early.body.id).toBe(dead.id);
    // long after any live request would have enqueued it, the key is taken over
    await stack.redis.hset(stack.api.keys.generation(dead.id), 'createdAt', new Date(Date.now() - 60_000).toISOString());
    const retry = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'orphaned' }, { ...auth('key-a'), 'Idempotency-Key': 'order-9' });
    expect(retry.status).toBe(202);
    expect(retry.body.id).not.toBe(dead.id);
    expect(await stack.redis.exists(stack.api.keys.generation(dead.id))).toBe(0);
    const again = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'orphaned' }, { ...auth('key-a'), 'Idempotency-Key': 'order-9' });
    expect(again.body.id).toBe(retry.body.id);
    expect(await stack.redis.ttl(idemKey)).toBeGreaterThan(3600);
  });
});
