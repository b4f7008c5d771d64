import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { generateJobName, generateJobOptions } from '../catalog';
import { keysFor } from '../keys';
import { newFileToken, newId } from '../ids';
import type { GenerationRecord } from '../schemas/generation';
import { GenerationStore } from './generation-store';
import { CREATE_LUA } from './lua/create';
import { withJobAdd } from './lua/with-job-add';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-cwj-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
const policy = { maxAttempts: 3, backoffMs: 1000, retentionSeconds: 3600 };
let redis: Redis;
let store: GenerationStore;
let queue: Queue;
let plain: Queue;

function record(priority: GenerationRecord['priority'] = 'normal'): Omit<GenerationRecord, 'createdAt'> {
  return {
    id: newId('gen'),
    tenant: 't1',
    status: 'queued',
    stage: 'queued',
    progress: 0,
    request: { topic: 'a fox', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' },
    metadata: null,
    priority,
    attempts: 0,
    fileToken: newFileToken(),
  };
}

const jobOf = (r: Omit<GenerationRecord, 'createdAt'>, opts = generateJobOptions(r.id, r.priority, policy)) => ({
  name: generateJobName(r.request.topic),
  data: { generationId: r.id, tenant: r.tenant },
  opts,
});

/** A job's hash without what differs between any two adds (its time). */
async function jobHash(q: Queue, id: string): Promise<Record<string, string>> {
  const { timestamp: _t, ...rest } = await redis.hgetall(`${q.opts.prefix}:${q.name}:${id}`);
  return rest;
}

beforeAll(async () => {
  redis = new Redis(url, { maxRetriesPerRequest: null });
  store = new GenerationStore(redis, keys, 3600);
  queue = new Queue('generate', { connection: redis, prefix });
  plain = new Queue('generate', { connection: redis, prefix: `${prefix}-plain` });
  await Promise.all([queue.waitUntilReady(), plain.waitUntilReady()]);
});
afterAll(async () => {
  for (const p of [prefix, `${prefix}-plain`]) {
    const found = await redis.keys(`${p}:*`);
    if (found.length) await redis.del(...found);
  }
  await queue.close();
  await plain.close();
  await redis.quit();
});

describe.each([
  ['prioritized', (r: Omit<GenerationRecord, 'createdAt'>) => jobOf(r)],
  ['standard (no priority)', (r: Omit<GenerationRecord, 'createdAt'>) => jobOf(r, { ...generateJobOptions(r.id, r.priority, policy), priority: 0 })],
])('createWithJob, %s job', (_kind, job) => {
  it('writes the record and the very job queue.add writes, in one step', async () => {
    const r = record();
    const spec = job(r);
    const created = await store.createWithJob(r, queue, spec);
    expect(await store.get(r.id)).toEqual(created);
    expect(created.createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);

    await plain.add(spec.name, spec.data, spec.opts);
    expect(await jobHash(queue, r.id)).toEqual(await jobHash(plain, r.id));
    const state = spec.opts.priority ? 'prioritized' : 'waiting';
    expect(await queue.getJobState(r.id)).toBe(state);
    expect(await plain.getJobState(r.id)).toBe(state);
    // BullMQ's own events for the add, as Bull Board and QueueEvents read them
    const events = (await redis.xrange(`${prefix}:generate:events`, '-', '+')).filter(([, f]) => f.includes(r.id)).map(([, f]) => f[1]);
    expect(events).toContain('added');
    expect(await redis.zscore(keys.tenantGenerations('t1', 'queued'), r.id)).not.toBeNull();
  });
});

it("ends the request's quota reservation in the same step", async () => {
  const reservations = keys.queuedReservations('t1');
  await redis.zadd(reservations, Date.now() + 60_000, 'req-1|1', Date.now() + 60_000, 'other|3');
  const r = record('high');
  await store.createWithJob(r, queue, jobOf(r), { key: reservations, entry: 'req-1|1' });
  expect(await redis.zrange(reservations, 0, -1)).toEqual(['other|3']);
});

it('many at once: each record has exactly its job, whatever the interleaving', async () => {
  const rs = Array.from({ length: 200 }, (_, i) => record(i % 3 === 0 ? 'low' : 'normal'));
  await Promise.all(rs.map((r) => store.createWithJob(r, queue, jobOf(r))));
  const ids = rs.map((r) => r.id);
  const jobs = await Promise.all(ids.map((id) => queue.getJob(id)));
  expect(jobs.map((j) => j?.data.generationId)).toEqual(ids);
  expect((await Promise.all(ids.map((id) => store.get(id)))).every((x) => x?.status === 'queued')).toBe(true);
});

it("when BullMQ's add refuses (a negative code), no record is written", async () => {
  // BullMQ answers a refused add with a negative code; a stand-in add that refuses shows what follows
  const refusing = withJobAdd('return -5', 1, CREATE_LUA);
  const r = record();
  const recordKey = keys.generation(r.id);
  const reply = await redis.eval(refusing, 7, `${prefix}:x`, recordKey, keys.tenantGenerations('t1'), keys.tenantGenerations('t1', 'queued'), keys.tenants(), recordKey, recordKey, 'a', 'b', 'c', r.id, 't1', 0, '', 0, '', 'status', 'queued');
  expect(reply).toEqual(['refused', -5]);
  expect(await redis.exists(recordKey)).toBe(0);
  expect(await redis.zscore(keys.tenantGenerations('t1', 'queued'), r.id)).toBeNull();
});

it('record fields of any characters survive the packed create (lengths in bytes, colons and digits inside, empty values)', async () => {
  const awkward = [':', '12:ab', 'naïve café', '日本語のトピック', '🦊 fox 🦊', 'a\u0000b', 'lone \ud800 surrogate', 'x'.repeat(3000)];
  for (const topic of awkward) {
    // request and metadata are JSON in the hash; notify is a plain string
    const r = { ...record(), request: { topic, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: { note: ['', ...awkward] }, notify: `chan:${topic}` };
    const created = await store.createWithJob(r, queue, jobOf(r));
    const read = await store.get(r.id);
    expect({ ...read, notify: '' }).toEqual({ ...created, notify: '' });
    expect(read?.request.topic).toBe(topic);
    expect(read?.metadata).toEqual({ note: ['', ...awkward] });
    // a plain string arrives as the UTF-8 the client sends (a lone surrogate as U+FFFD, as with any argument)
    expect(read?.notify).toBe(Buffer.from(`chan:${topic}`).toString());
  }
});
