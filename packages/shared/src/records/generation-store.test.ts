import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { keysFor } from '../keys';
import { newFileToken, newId } from '../ids';
import type { GenerationRecord } from '../schemas/generation';
import { GenerationStore } from './generation-store';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-store-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;
let sub: Redis;
let store: GenerationStore;

function record(tenant = 't1', overrides: Partial<GenerationRecord> = {}): GenerationRecord {
  return {
    id: newId('gen'),
    tenant,
    status: 'queued',
    stage: 'queued',
    progress: 0,
    request: { topic: 'x', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' },
    metadata: { a: 1 },
    priority: 'normal',
    attempts: 0,
    createdAt: new Date().toISOString(),
    fileToken: newFileToken(),
    ...overrides,
  };
}

beforeAll(() => {
  redis = new Redis(url);
  sub = new Redis(url);
  store = new GenerationStore(redis, keys, 3600);
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await Promise.all([redis.quit(), sub.quit()]);
});

it('round-trips a record, JSON fields included', async () => {
  const r = record();
  await store.create(r);
  expect(await store.get(r.id)).toEqual(r);
  expect(await store.get('gen_missing')).toBeNull();
});

it('a tenant reads only its own records', async () => {
  const r = record('owner');
  await store.create(r);
  expect(await store.getForTenant(r.id, 'owner')).not.toBeNull();
  expect(await store.getForTenant(r.id, 'someone-else')).toBeNull();
});

it('progress only rises and startedAt is set once', async () => {
  const r = record();
  await store.create(r);
  await store.markActive(r.id, 1);
  const first = (await store.get(r.id))!;
  await store.setStage(r.id, 'processing');
  await store.transition(r.id, { progress: 20, stage: 'generating' });
  await new Promise((res) => setTimeout(res, 5));
  await store.markActive(r.id, 2);
  const after = (await store.get(r.id))!;
  expect(after.progress).toBe(65);
  expect(after.attempts).toBe(2);
  expect(after.startedAt).toBe(first.startedAt);
});

it('a terminal record is never rewritten, and gets its retention TTL', async () => {
  const r = record();
  await store.create(r);
  expect(await redis.ttl(keys.generation(r.id))).toBe(-1);
  expect(await store.cancel(r.id)).toBe('ok');
  expect(await redis.ttl(keys.generation(r.id))).toBeGreaterThan(3500);
  expect(await store.complete(r.id, { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] })).toBe('terminal');
  expect(await store.markActive(r.id, 1)).toBe('terminal');
  const after = (await store.get(r.id))!;
  expect(after.status).toBe('cancelled');
  expect(after.result).toBeUndefined();
  expect(await store.transition('gen_nope', { progress: 5 })).toBe('missing');
});

it('complete clears the error of a failed attempt and the upstream URL checkpoint', async () => {
  const r = record();
  await store.create(r);
  await store.retrying(r.id, { code: 'upstream_unavailable', message: '503', retryable: true });
  await store.checkpoint(r.id, { upstreamUrl: 'http://upstream/file.png' });
  expect((await store.get(r.id))!.error?.code).toBe('upstream_unavailable');
  await store.complete(r.id, { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] });
  const done = (await store.get(r.id))!;
  expect(done.status).toBe('completed');
  expect(done.error).toBeUndefined();
  expect(done.upstreamUrl).toBeUndefined();
});

it('publishes each change on the generation channel', async () => {
  const r = record();
  await store.create(r);
  const messages: string[] = [];
  await sub.subscribe(keys.generationChannel(r.id));
  sub.on('message', (_c, m) => messages.push(m));
  await store.markActive(r.id, 1);
  await store.setStage(r.id, 'downloading');
  await store.fail(r.id, { code: 'x', message: 'y', retryable: false });
  await new Promise((res) => setTimeout(res, 50));
  expect(messages.map((m) => JSON.parse(m))).toEqual([
    { type: 'generation.started', status: 'active' },
    { type: 'generation.progress', status: 'active' },
    { type: 'generation.failed', status: 'failed' },
  ]);
});

it('lists newest first with a cursor, filters by status and prunes expired entries', async () => {
  const tenant = `lister-${randomBytes(3).toString('hex')}`;
  const made: GenerationRecord[] = [];
  for (let i = 0; i < 7; i++) {
    const r = record(tenant);
    made.push(r);
    await store.create(r);
    await new Promise((res) => setTimeout(res, 2));
  }
  await store.cancel(made[1]!.id);
  await redis.del(keys.generation(made[3]!.id)); // as if its retention ended
  const page1 = await store.list(tenant, { limit: 3 });
  const page2 = await store.list(tenant, { limit: 3, cursor: page1.nextCursor! });
  const ids = [...page1.records, ...page2.records].map((r) => r.id);
  expect(ids).toEqual(made.filter((_, i) => i !== 3).map((r) => r.id).reverse());
  expect(page2.nextCursor).toBeNull();
  expect(await redis.zscore(keys.tenantGenerations(tenant), made[3]!.id)).toBeNull();
  const cancelled = await store.list(tenant, { limit: 10, status: 'cancelled' });
  expect(cancelled.records.map((r) => r.id)).toEqual([made[1]!.id]);
});

it('a provisional record expires unless confirmed or touched by a worker', async () => {
  const a = record();
  const b = record();
  const c = record();
  for (const r of [a, b, c]) await store.create(r, 600);
  for (const r of [a, b, c]) expect(await redis.ttl(keys.generation(r.id))).toBeGreaterThan(500);
  await store.confirm(a.id);
  await store.markActive(b.id, 1);
  expect(await redis.ttl(keys.generation(a.id))).toBe(-1);
  expect(await redis.ttl(keys.generation(b.id))).toBe(-1);
  expect(await redis.ttl(keys.generation(c.id))).toBeGreaterThan(500);
});
