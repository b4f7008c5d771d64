import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BatchStore, createLogger, GenerationStore, keysFor, newFileToken, newId, QUEUES, type BatchRecord, type GenerationRef } from '@imagegen/shared';
import { BatchFeeder, releasedDoneOf } from './feeder';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-feeder-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
const TENANT = 'tf';
let redis: Redis;
let queue: Queue;

beforeAll(() => {
  redis = new Redis(url, { maxRetriesPerRequest: null });
  queue = new Queue(QUEUES.generate, { connection: redis, prefix });
});
// each test's batches alone share the window
afterEach(async () => {
  await redis.del(keys.batchesFeeding());
  await queue.obliterate({ force: true });
});
afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

/** A confirmed batch of `n` queued items, as the API writes one. */
async function newBatch(n: number, tenant = TENANT): Promise<{ id: string; items: GenerationRef[] }> {
  const batches = new BatchStore(redis, keys);
  const id = newId('batch');
  const base: Omit<BatchRecord, 'createdAt'> = { id, tenant, status: 'in_progress', total: n, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, releasedDone: 0, countedTo: 0, metadata: null };
  expect((await batches.begin(base, 600)).outcome).toBe('created');
  const items = Array.from({ length: n }, (_, index) => ({ id: newId('gen'), fileToken: newFileToken(), request: { topic: `item ${index}`, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index }));
  expect(await batches.addItems({ id, tenant }, items, 600)).toBe(true);
  expect(await batches.confirm({ id, tenant })).toBe(true);
  return { id, items: items.map((i) => ({ id: i.id, tenant, batchId: id })) };
}

const jobsQueued = async () => Object.values(await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active')).reduce((a, b) => a + b, 0);

const feederOf = (window: number, cancelStalledMs?: number) => {
  const store = new GenerationStore(redis, keys, 3600);
  const batches = new BatchStore(redis, keys);
  return new BatchFeeder(redis, keys, queue, createLogger('worker', 'silent'), {
    window,
    intervalMs: 50,
    owner: 'feeder-test',
    policy: { maxAttempts: 1, backoffMs: 1000, retentionSeconds: 3600 },
    cancels: { items: (batch, ids) => store.cancelBatchItems(batch, ids), progress: (batch, reached, done) => batches.noteCancelProgress(batch, reached, done, false) },
    removeUnaccepted: (batch, max) => batches.removeUnaccepted(batch, max),
    ...(cancelStalledMs !== undefined ? { cancelStalledMs } : {}),
  });
};
const result = { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] };

it('items cancelled one by one before their release take no place in the window, however many', async () => {
  const store = new GenerationStore(redis, keys, 3600);
  const feeder = feederOf(4);
  const { id, items } = await newBatch(20);
  const cursor = async () => (await redis.hmget(keys.batch(id), 'released', 'releasedDone')).map(Number);

  expect(await feeder.tick()).toBe(4);
  // two items next in line and the last eight are cancelled by id before the feeder reaches them
  for (const i of [4, 5, 12, 13, 14, 15, 16, 17, 18, 19]) expect(await store.cancel(items[i]!)).toBe('ok');
  for (let t = 0; t < 3; t++) await feeder.tick();
  // before: each tick saw ten cancelled items against four released, and released four more: twelve jobs
  expect(await jobsQueued()).toBe(4);
  expect(await cursor()).toEqual([4, 0]);

  // the four released end: four places free; of the next four released, the two cancelled ones end at once
  for (const i of [0, 1, 2, 3]) {
    await store.markActive(items[i]!, 1);
    await store.complete(items[i]!, result);
  }
  expect(await feeder.tick()).toBe(4);
  expect(await cursor()).toEqual([8, 6]);
  expect(await feeder.tick()).toBe(2);
  expect(await cursor()).toEqual([10, 6]);
  expect(await feeder.tick()).toBe(0);
});

it('an item cancelled before its release whose record is gone by then counts as ended: the window does not stall', async () => {
  const store = new GenerationStore(redis, keys, 3600);
  const feeder = feederOf(2);
  const { id, items } = await newBatch(6);
  expect(await feeder.tick()).toBe(2);
  for (const i of [2, 3]) expect(await store.cancel(items[i]!)).toBe('ok');
  // the retention sweep removes the cancelled records before the feeder reaches them
  await redis.del(keys.generation(items[2]!.id), keys.generation(items[3]!.id));
  for (const i of [0, 1]) {
    await store.markActive(items[i]!, 1);
    await store.complete(items[i]!, result);
  }
  expect(await feeder.tick()).toBe(2);
  expect((await redis.hmget(keys.batch(id), 'released', 'releasedDone')).map(Number)).toEqual([4, 4]);
  // before: the two gone records counted as under way for good, and items 4 and 5 were never fed
  expect(await feeder.tick()).toBe(2);
});

it('items ended without the batch counting them (a process of an earlier version, during an upgrade) hold no places: the counts bound it', async () => {
  const store = new GenerationStore(redis, keys, 3600);
  const feeder = feederOf(2);
  const { id, items } = await newBatch(4);
  expect(await feeder.tick()).toBe(2);
  for (const i of [0, 1]) {
    await store.markActive(items[i]!, 1);
    await store.complete(items[i]!, result);
  }
  // as an earlier version's transition leaves it: counted complete, not in releasedDone
  await redis.hset(keys.batch(id), 'releasedDone', '0');
  expect(await feeder.tick()).toBe(2);
  // the rule itself: a completed or failed item, and a cancel beyond the items not yet released, was released
  expect(releasedDoneOf(10, 4, 2, 1, 0, 0)).toBe(3);
  expect(releasedDoneOf(10, 4, 0, 0, 8, 0)).toBe(2);
  expect(releasedDoneOf(10, 4, 0, 0, 3, 1)).toBe(1);
  expect(releasedDoneOf(10, 4, 1, 0, 3, undefined)).toBe(4);
});

it('tenants tied for the window take turns: with one place, neither waits for the other to finish', async () => {
  const store = new GenerationStore(redis, keys, 3600);
  const feeder = feederOf(1);
  const a = await newBatch(3, 'ta');
  const b = await newBatch(3, 'tb');
  const released = async () => (await Promise.all([a, b].map(async (x) => Number(await redis.hget(keys.batch(x.id), 'released'))))) as [number, number];
  const order: string[] = [];
  for (let round = 0; round < 4; round++) {
    const [ra, rb] = await released();
    expect(await feeder.tick()).toBe(1);
    const [na, nb] = await released();
    const [tenant, batch, index] = na > ra ? (['ta', a, ra] as const) : (['tb', b, rb] as const);
    expect(na + nb).toBe(ra + rb + 1);
    order.push(tenant);
    await store.markActive(batch.items[index]!, 1);
    await store.complete(batch.items[index]!, result);
  }
  // before: the tenant that sorts first took every place until its batch was all released
  expect(order).toEqual(expect.arrayContaining(['ta', 'tb']));
  expect(order.filter((t) => t === 'ta')).toHaveLength(2);
});

it('a cursor moved on by a feeder that does not count (an earlier version, during an upgrade) is counted up by the next round: the window does not stall', async () => {
  const store = new GenerationStore(redis, keys, 3600);
  const feeder = feederOf(4);
  const { id, items } = await newBatch(30);
  for (let i = 4; i < 12; i++) expect(await store.cancel(items[i]!)).toBe('ok');
  // an earlier version's feeder releases 12, moving only the cursor
  await redis.hset(keys.batch(id), 'released', '12');
  for (const i of [0, 1, 2, 3]) {
    await store.markActive(items[i]!, 1);
    await store.complete(items[i]!, result);
  }
  // before: the eight cancels it passed counted as under way for good (12 released, 4 counted): nothing more, ever
  expect(await feeder.tick()).toBe(4);
  expect((await redis.hmget(keys.batch(id), 'released', 'releasedDone', 'countedTo')).map(Number)).toEqual([16, 12, 16]);
});

it('a tenant with many batches is first in a tie no more often than one with a single batch', async () => {
  const store = new GenerationStore(redis, keys, 3600);
  const feeder = feederOf(1);
  const batches = [await newBatch(4, 'tm'), await newBatch(4, 'tm'), await newBatch(4, 'tn')];
  const released = async () => Promise.all(batches.map(async (x) => Number(await redis.hget(keys.batch(x.id), 'released'))));
  const order: string[] = [];
  const winners: number[] = [];
  for (let round = 0; round < 6; round++) {
    const before = await released();
    expect(await feeder.tick()).toBe(1);
    const after = await released();
    const k = after.findIndex((n, i) => n > before[i]!);
    const batch = batches[k]!;
    order.push(batch.items[0]!.tenant);
    winners.push(k);
    await store.markActive(batch.items[before[k]!]!, 1);
    await store.complete(batch.items[before[k]!]!, result);
  }
  // before: by batch, so tm was first two rounds in three
  expect(order.filter((t) => t === 'tn')).toHaveLength(3);
  // and both of tm's batches get their turns (not always the same one while the other waits);
  // which of the two goes first depends on their ids, which two batches made in one millisecond
  // order at random
  expect([winners.filter((k) => k === 0).length, winners.filter((k) => k === 1).length].sort()).toEqual([1, 2]);
});

it('finishes the cancel of a batch whose cancel request stopped part-way, once it has stalled, and feeds it no more', async () => {
  const store = new GenerationStore(redis, keys, 3600);
  const batches = new BatchStore(redis, keys);
  const { id, items } = await newBatch(2300, 'cancel-tenant');
  await feederOf(4).tick();
  expect(await jobsQueued()).toBe(4);
  // the API marks the batch cancelled and cancels the first 150 items, then its process dies
  const batch = { id, tenant: 'cancel-tenant' };
  await batches.markCancelled(batch, new Date(await store.now()).toISOString());
  await store.cancelBatchItems(batch, items.slice(0, 100).map((i) => i.id));
  await store.cancelBatchItems(batch, items.slice(100, 150).map((i) => i.id));
  // not stalled yet: the request may still be at work, and nothing is fed meanwhile
  await feederOf(1000).tick();
  expect(await jobsQueued()).toBe(4);
  expect((await batches.get(id))?.cancelled).toBe(150);
  // begun long ago, but its request noted progress just now: still at work
  await redis.hset(keys.batch(id), 'cancelledAt', new Date(Date.now() - 60_000).toISOString());
  await batches.noteCancelProgress(batch, 150, false);
  await feederOf(1000).tick();
  expect((await batches.get(id))?.cancelled).toBe(150);
  // stalled: each round finishes up to 2,000 items from where the last left off
  const feeder = feederOf(1000, 0);
  await feeder.tick();
  // from where its request got to (150)
  expect((await batches.get(id))?.cancelled).toBe(2150);
  expect(await redis.zscore(keys.batchesFeeding(), `cancel-tenant|${id}`)).not.toBeNull();
  await feeder.tick();
  // before: the feeder dropped the batch at the cancel, and 2,150 items stayed queued until the orphan sweep failed them as job_lost
  const done = await batches.get(id);
  expect(done).toMatchObject({ status: 'completed', cancelled: 2300, queued: 0, failed: 0 });
  expect(await redis.zscore(keys.batchesFeeding(), `cancel-tenant|${id}`)).toBeNull();
  expect(await jobsQueued()).toBe(4);
  await queue.drain(true);
});

it('feeds nothing of a batch still being written, and removes what one gone unconfirmed wrote (its writer died)', async () => {
  const batches = new BatchStore(redis, keys);
  const tenant = 'writer-tenant';
  const write = async (n: number, leaseSeconds: number) => {
    const id = newId('batch');
    const base: Omit<BatchRecord, 'createdAt'> = { id, tenant, status: 'in_progress', total: n, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, releasedDone: 0, countedTo: 0, metadata: null };
    expect((await batches.begin(base, leaseSeconds)).outcome).toBe('created');
    const items = Array.from({ length: n }, (_, index) => ({ id: newId('gen'), fileToken: newFileToken(), request: { topic: `item ${index}`, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index }));
    expect(await batches.addItems({ id, tenant }, items, leaseSeconds, 600)).toBe(true);
    return { id, items };
  };
  const writing = await write(3, 600);
  const dead = await write(1200, 1);
  const queued = keys.tenantGenerations(tenant, 'queued');
  expect(await redis.zcard(queued)).toBe(1203);
  // the dead writer's lease runs out: its batch goes, its list and items stay
  await redis.del(keys.batch(dead.id));
  const feeder = feederOf(100);
  await feeder.tick();
  // before: its 1,200 items stayed listed and counted against the queued cap until orphan sweeps took them, 10,000 a sweep
  expect(await redis.zcard(queued)).toBe(3);
  expect(await redis.exists(keys.generation(dead.items[0]!.id), keys.batchItems(dead.id))).toBe(0);
  expect(await redis.zscore(keys.batchesWriting(), `${tenant}|${dead.id}`)).toBeNull();
  // the one being written is left alone, and not fed (it is not on the feeding list, which a
  // feeder of an earlier version would feed from, until it is confirmed)
  expect(await redis.zscore(keys.batchesWriting(), `${tenant}|${writing.id}`)).not.toBeNull();
  expect(await redis.zscore(keys.batchesFeeding(), `${tenant}|${writing.id}`)).toBeNull();
  expect(await redis.hget(keys.batch(writing.id), 'released')).toBe('0');
  await batches.abandon({ id: writing.id, tenant });
  expect(await redis.sismember(keys.tenants(), tenant)).toBe(0);
  expect(await redis.zscore(keys.batchesWriting(), `${tenant}|${writing.id}`)).toBeNull();
});
