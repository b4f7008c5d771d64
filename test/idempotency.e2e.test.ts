import { createHash } from 'node:crypto';
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

  it('concurrent repeats still make one generation', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => postJson(`${stack.baseUrl}/v1/generations`, { topic: 'racing' }, { ...auth('key-a'), 'Idempotency-Key': 'race-1' })),
    );
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.every((r) => r.status === 202)).toBe(true);
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

  it('a key whose first request died before enqueueing is taken over, not stuck for a day', async () => {
    // what a request leaves behind when it dies between claiming the key and enqueueing
    const sha = (v: string) => createHash('sha256').update(v).digest('hex');
    const parsed = { topic: 'orphaned', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE', priority: 'normal' };
    await stack.redis.set(`${stack.prefix}:idem:a:${sha('order-9')}`, JSON.stringify({ bodyHash: sha(JSON.stringify(parsed)), generationId: 'gen_neverenqueued' }), 'EX', 600);
    const retry = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'orphaned' }, { ...auth('key-a'), 'Idempotency-Key': 'order-9' });
    expect(retry.status).toBe(202);
    expect(retry.body.id).not.toBe('gen_neverenqueued');
    const again = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'orphaned' }, { ...auth('key-a'), 'Idempotency-Key': 'order-9' });
    expect(again.body.id).toBe(retry.body.id);
    expect(await stack.redis.ttl(`${stack.prefix}:idem:a:${sha('order-9')}`)).toBeGreaterThan(3600);
  });
});
