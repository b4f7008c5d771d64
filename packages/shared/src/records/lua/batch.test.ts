import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { newFileToken, newId } from '../../ids';
import { keysFor } from '../../keys';
import type { BatchRecord } from '../../schemas/batch';
import { readBatchMessage } from '../../schemas/channel';
import type { WebhookTarget } from '../../schemas/request';
import { BatchStore } from '../batch-store';
import { GenerationStore, type GenerationRef } from '../generation-store';
import { RecordRetention } from '../record-retention';

/** The batch-count fragment of the record transition (batch.ts), run for real through the stores. */

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-batchlua-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
const TENANT = 't1';
const RETENTION = 3600;
let redis: Redis;
let listener: Redis;
let store: GenerationStore;
let batches: BatchStore;

const result = { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] };
const failure = { code: 'upstream_rejected', message: 'refused', retryable: false };

/** A confirmed batch of `n` queued items, as the API writes one. */
async function newBatch(n: number, webhook?: WebhookTarget, idsAtMs?: number): Promise<{ id: string; items: GenerationRef[] }> {
  const id = newId('batch', idsAtMs);
  const base: Omit<BatchRecord, 'createdAt'> = { id, tenant: TENANT, status: 'in_progress', total: n, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, metadata: { run: 1 }, ...(webhook ? { webhook } : {}) };
  expect((await batches.begin(base, 600)).outcome).toBe('created');
  const items = Array.from({ length: n }, (_, index) => ({ id: newId('gen', idsAtMs), fileToken: newFileToken(), request: { topic: `item ${index}`, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index }));
  expect(await batches.addItems({ id, tenant: TENANT, ...(webhook ? { webhook } : {}) }, items, 600)).toBe(true);
  expect(await batches.confirm({ id, tenant: TENANT })).toBe(true);
  return { id, items: items.map((i) => ({ id: i.id, tenant: TENANT, batchId: id })) };
}

async function counts(id: string) {
  const b = (await batches.get(id)) as BatchRecord;
  return { status: b.status, queued: b.queued, active: b.active, completed: b.completed, failed: b.failed, cancelled: b.cancelled };
}

/** Entries of the webhook outbox that complete batch `id`. */
async function completedEntries(id: string): Promise<string[][]> {
  const entries = (await redis.xrange(keys.webhookOutbox(), '-', '+')) as [string, string[]][];
  return entries.map(([, flat]) => flat).filter((f) => f[f.indexOf('batch') + 1] === id && f[f.indexOf('event') + 1] === 'batch.completed');
}

/** Every message published on the batch's channel while `fn` runs (a closing marker shows all have arrived). */
async function heardDuring(id: string, fn: () => Promise<void>): Promise<{ type: string; [k: string]: unknown }[]> {
  const channel = keys.batchChannel(id);
  const heard: { type: string; [k: string]: unknown }[] = [];
  const marker = `end-${randomBytes(4).toString('hex')}`;
  let ended!: () => void;
  const end = new Promise<void>((resolve) => (ended = resolve));
  const onMessage = (ch: string, message: string) => {
    if (ch !== channel) return;
    if (message === marker) ended();
    // as live listeners read it: one the channel's schema refuses shows as unreadable
    else heard.push(readBatchMessage(message) ?? { type: 'unreadable', message });
  };
  listener.on('message', onMessage);
  await listener.subscribe(channel);
  try {
    await fn();
    await redis.publish(channel, marker);
    await end;
  } finally {
    listener.off('message', onMessage);
    await listener.unsubscribe(channel);
  }
  return heard;
}

beforeAll(() => {
  redis = new Redis(url);
  listener = new Redis(url);
  store = new GenerationStore(redis, keys, RETENTION);
  batches = new BatchStore(redis, keys);
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await Promise.all([redis.quit(), listener.quit()]);
});

it('moves one count down and one up on every status change of an item, and nothing otherwise', async () => {
  const { id, items } = await newBatch(3);
  const [a, b, c] = items as [GenerationRef, GenerationRef, GenerationRef];
  expect(await counts(id)).toEqual({ status: 'in_progress', queued: 3, active: 0, completed: 0, failed: 0, cancelled: 0 });

  const heard = await heardDuring(id, async () => {
    await store.markActive(a, 1);
    expect(await counts(id)).toMatchObject({ queued: 2, active: 1 });
    await store.setStage(a, 'storing');
    await store.checkpoint(a, { upstreamUrl: 'https://up.example/1' });
    expect(await counts(id)).toMatchObject({ queued: 2, active: 1 });
    // a failed attempt to be tried again goes back to queued
    await store.retrying(a, { ...failure, retryable: true });
    expect(await counts(id)).toMatchObject({ queued: 3, active: 0 });
    await store.markActive(a, 2);
    await store.complete(a, result);
    await store.markActive(b, 1);
    await store.fail(b, failure);
    expect(await counts(id)).toEqual({ status: 'in_progress', queued: 1, active: 0, completed: 1, failed: 1, cancelled: 0 });
  });
  // one item event per status change, none for stage or checkpoint updates
  expect(heard.map((m) => [m.type, m.index, m.from, m.status])).toEqual([
    ['item', 0, 'queued', 'active'],
    ['item', 0, 'active', 'queued'],
    ['item', 0, 'queued', 'active'],
    ['item', 0, 'active', 'completed'],
    ['item', 1, 'queued', 'active'],
    ['item', 1, 'active', 'failed'],
  ]);
  expect(await store.get(c.id)).toMatchObject({ status: 'queued', batchId: id });
  // the finished-items stream holds the items that ended, in the order they ended, nothing else
  expect((await batches.finishedAfter(id, '0-0', 10)).map((e) => e.item)).toEqual([
    { index: 0, id: a.id, status: 'completed' },
    { index: 1, id: b.id, status: 'failed' },
  ]);
  // an entry id is a place to go on from: after the first, only the second
  const [first] = await batches.finishedAfter(id, '0-0', 1);
  expect((await batches.finishedAfter(id, first!.entry, 10)).map((e) => e.item.index)).toEqual([1]);
  expect(await batches.finishedEnd(id)).toBe((await batches.finishedAfter(id, first!.entry, 10))[0]!.entry);
  // an open batch owns it (it goes when the batch does): no expiry yet
  expect(await redis.ttl(keys.batchFinished(id))).toBe(-1);
});

it('a begin or a chunk of items sent again (ioredis resends a call whose reply a reconnect lost) answers as the first run and writes nothing twice', async () => {
  const id = newId('batch');
  const record = { id, tenant: TENANT, status: 'in_progress' as const, total: 4, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, metadata: null };
  const claim = { key: keys.idempotency(TENANT, `again-${id}`), value: `${id}|digest`, ttlSeconds: 600 };
  const first = await batches.begin(record, 600, claim);
  expect(first.outcome).toBe('created');
  // before: held by its own claim, the batch answered 409 until it expired
  expect(await batches.begin(record, 600, claim)).toEqual(first);
  // another call with the key is still told what the key holds
  expect(await batches.begin({ ...record, id: newId('batch') }, 600, { ...claim, value: 'other|digest' })).toEqual({ outcome: 'held', value: claim.value });

  const items = [0, 1, 2, 3].map((index) => ({ id: newId('gen'), fileToken: newFileToken(), request: { topic: `again ${index}`, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index }));
  const [head, tail] = [items.slice(0, 2), items.slice(2)];
  expect(await batches.addItems({ id, tenant: TENANT }, head, 600)).toBe(true);
  expect(await batches.addItems({ id, tenant: TENANT }, head, 600)).toBe(true);
  // before: the first chunk listed twice and counted twice, so the feeder (reading up to total) never reached the second
  expect(await redis.lrange(keys.batchItems(id), 0, -1)).toEqual(head.map((i) => i.id));
  expect(await redis.hget(keys.batch(id), 'queued')).toBe('2');
  // a chunk that does not follow the list is refused, writing nothing
  await expect(batches.addItems({ id, tenant: TENANT }, [tail[1]!], 600)).rejects.toThrow(/does not end where this chunk starts/);
  expect(await batches.addItems({ id, tenant: TENANT }, tail, 600)).toBe(true);
  expect(await batches.addItems({ id, tenant: TENANT }, tail, 600)).toBe(true);
  expect(await redis.lrange(keys.batchItems(id), 0, -1)).toEqual(items.map((i) => i.id));
  expect(await redis.hget(keys.batch(id), 'queued')).toBe('4');
});

it('each chunk takes its items out of the request’s quota reservation as it indexes them, keeping the reservation’s expiry', async () => {
  const id = newId('batch');
  const record = { id, tenant: TENANT, status: 'in_progress' as const, total: 5, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, metadata: null };
  expect((await batches.begin(record, 600)).outcome).toBe('created');
  const reservations = keys.queuedReservations(TENANT);
  const expires = Date.now() + 60_000;
  await redis.zadd(reservations, expires, 'req-1|5');
  await redis.pexpire(reservations, 60_000);
  const items = [0, 1, 2, 3, 4].map((index) => ({ id: newId('gen'), fileToken: newFileToken(), request: { topic: `reserved ${index}`, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index }));
  const reserved = async () => (await redis.zrangebyscore(reservations, '-inf', '+inf', 'WITHSCORES')).join(' ');
  expect(await batches.addItems({ id, tenant: TENANT }, items.slice(0, 3), 600, 600, { key: reservations, entry: 'req-1|5', rest: 'req-1|2' })).toBe(true);
  // reserved and queued add up to the batch, not to twice its written part (before: 'req-1|5' and 3 queued)
  expect(await reserved()).toBe(`req-1|2 ${expires}`);
  // the key keeps its expiry (a key emptied and made again would have none)
  expect(await redis.pttl(reservations)).toBeGreaterThan(50_000);
  expect(await redis.zcard(keys.tenantGenerations(TENANT, 'queued'))).toBeGreaterThanOrEqual(3);
  // the same chunk sent again changes nothing more
  expect(await batches.addItems({ id, tenant: TENANT }, items.slice(0, 3), 600, 600, { key: reservations, entry: 'req-1|5', rest: 'req-1|2' })).toBe(true);
  expect(await reserved()).toBe(`req-1|2 ${expires}`);
  expect(await batches.addItems({ id, tenant: TENANT }, items.slice(3), 600, 600, { key: reservations, entry: 'req-1|2', rest: '' })).toBe(true);
  expect(await redis.zcard(reservations)).toBe(0);
});

it('an item of a batch still being written that ends is told too; the stream expires with the batch unless it is confirmed', async () => {
  const id = newId('batch');
  expect((await batches.begin({ id, tenant: TENANT, status: 'in_progress', total: 2, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, metadata: null }, 600)).outcome).toBe('created');
  const items = [0, 1].map((index) => ({ id: newId('gen'), fileToken: newFileToken(), request: { topic: `early ${index}`, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index }));
  expect(await batches.addItems({ id, tenant: TENANT }, items, 600)).toBe(true);
  // cancelled by id while the upload goes on
  expect(await store.cancel({ id: items[0]!.id, tenant: TENANT, batchId: id })).toBe('ok');
  expect((await batches.finishedAfter(id, '0-0', 10)).map((e) => e.item)).toEqual([{ index: 0, id: items[0]!.id, status: 'cancelled' }]);
  // no longer than the batch: were the upload never confirmed, both would go
  const [batchTtl, streamTtl] = [await redis.pttl(keys.batch(id)), await redis.pttl(keys.batchFinished(id))];
  expect(streamTtl).toBeGreaterThan(0);
  expect(streamTtl).toBeLessThanOrEqual(batchTtl + 50);
  // confirmed, the batch owns it
  expect(await batches.confirm({ id, tenant: TENANT })).toBe(true);
  expect(await redis.pttl(keys.batchFinished(id))).toBe(-1);
  expect((await batches.finishedAfter(id, '0-0', 10)).map((e) => e.item.index)).toEqual([0]);
});

it("a batch's completedAt and cancelledAt are never before its createdAt, the time in its id", async () => {
  const [sec, us] = await redis.time();
  const redisNow = Number(sec) * 1000 + Math.floor(Number(us) / 1000);
  // ids made by a process whose reading of Redis's clock is 30 s ahead
  const done = await newBatch(1, undefined, redisNow + 30_000);
  await store.fail(done.items[0]!, failure);
  const cancelled = await newBatch(1, undefined, redisNow + 30_000);
  expect(await batches.markCancelled({ id: cancelled.id, tenant: TENANT }, new Date(redisNow).toISOString())).toBe(true);
  const [a, b] = [(await batches.get(done.id))!, (await batches.get(cancelled.id))!];
  expect(a.createdAt).toBe(new Date(redisNow + 30_000).toISOString());
  // before: Redis's time, 30 s before the batch was created
  expect([a.status, a.completedAt]).toEqual(['completed', a.createdAt]);
  expect(b.cancelledAt).toBe(b.createdAt);
});

it('does not count a repeated terminal transition again', async () => {
  const { id, items } = await newBatch(3);
  const [a, b] = items as [GenerationRef, GenerationRef];
  await store.markActive(a, 1);
  expect(await store.complete(a, result)).toBe('ok');
  expect(await store.cancel(b)).toBe('ok');
  const before = await counts(id);
  expect(before).toEqual({ status: 'in_progress', queued: 1, active: 0, completed: 1, failed: 0, cancelled: 1 });
  // late or duplicate writes of finished items: refused, counts untouched
  expect(await store.complete(a, result)).toBe('terminal');
  expect(await store.fail(a, failure)).toBe('terminal');
  expect(await store.cancel(a)).toBe('terminal');
  expect(await store.markActive(a, 2)).toBe('terminal');
  expect(await store.cancel(b)).toBe('terminal');
  expect(await store.complete(b, result)).toBe('terminal');
  expect(await counts(id)).toEqual(before);
  // each item ended once, and is told once
  expect((await batches.finishedAfter(id, '0-0', 10)).map((e) => [e.item.index, e.item.status])).toEqual([
    [0, 'completed'],
    [1, 'cancelled'],
  ]);
});

it('completes the batch exactly once: on the change that finishes its last item', async () => {
  const { id, items } = await newBatch(2, { url: 'https://hooks.example/batch' });
  const [a, b] = items as [GenerationRef, GenerationRef];
  const heard = await heardDuring(id, async () => {
    await store.complete(a, result);
    expect(await counts(id)).toMatchObject({ status: 'in_progress', completed: 1 });
    expect(await completedEntries(id)).toEqual([]);
    await store.fail(b, failure);
  });
  const done = (await batches.get(id)) as BatchRecord;
  expect(done).toMatchObject({ status: 'completed', queued: 0, active: 0, completed: 1, failed: 1, cancelled: 0 });
  expect(done.completedAt).toBeDefined();
  // from now on the batch is bounded: it and its item list expire, and the sweep knows when
  expect(await redis.ttl(keys.batch(id))).toBeGreaterThan(RETENTION - 60);
  expect(await redis.ttl(keys.batchItems(id))).toBeGreaterThan(RETENTION - 60);
  expect(await redis.ttl(keys.batchFinished(id))).toBeGreaterThan(RETENTION - 60);
  expect(await redis.zscore(keys.batchExpiry(), `${id}|${TENANT}`)).not.toBeNull();

  // repeats of the finishing transitions change nothing and announce nothing
  const again = await heardDuring(id, async () => {
    expect(await store.fail(b, failure)).toBe('terminal');
    expect(await store.complete(a, result)).toBe('terminal');
    expect(await store.cancel(b)).toBe('terminal');
  });
  expect(again).toEqual([]);
  expect(await batches.get(id)).toEqual(done);

  const completions = heard.filter((m) => m.type === 'batch.completed');
  expect(completions).toHaveLength(1);
  expect(completions[0]).toMatchObject({ batch: { id, status: 'completed', total: 2, progress: 100, counts: { completed: 1, failed: 1 }, metadata: { run: 1 } } });
  const entries = await completedEntries(id);
  expect(entries).toHaveLength(1);
  expect(JSON.parse(entries[0]![entries[0]!.indexOf('data') + 1]!)).toMatchObject({ id, status: 'completed', counts: { queued: 0, active: 0, completed: 1, failed: 1, cancelled: 0 } });

  // when its retention ends, the sweep takes the batch and everything of it
  const retention = new RecordRetention(redis, keys);
  // its delivery log (batch.completed) goes with it
  await redis.hset(keys.batchDeliveries(id), 'seq', '1');
  expect(await retention.removeDueBatches(Date.now() + RETENTION * 1000 + 1000, 100)).toBeGreaterThanOrEqual(1);
  expect(await redis.exists(keys.batch(id), keys.batchItems(id), keys.batchFinished(id), keys.batchDeliveries(id))).toBe(0);
  expect(await redis.zscore(keys.batchExpiry(), `${id}|${TENANT}`)).toBeNull();
});

it('counts every item once and completes once when many items finish at the same time, each twice', async () => {
  const n = 200;
  const { id, items } = await newBatch(n, { url: 'https://hooks.example/race' });
  await Promise.all(items.map((i) => store.markActive(i, 1)));
  expect(await counts(id)).toMatchObject({ queued: 0, active: n });
  // two writers race to finish each item (a lost lock, a cancel): exactly one wins
  const outcomes = await Promise.all(items.flatMap((i, k) => [store.complete(i, result), k % 4 === 0 ? store.cancel(i) : store.complete(i, result)]));
  expect(outcomes.filter((o) => o === 'ok')).toHaveLength(n);
  expect(outcomes.filter((o) => o === 'terminal')).toHaveLength(n);
  const done = await counts(id);
  expect(done.status).toBe('completed');
  expect(done.completed + done.cancelled).toBe(n);
  expect(done).toMatchObject({ queued: 0, active: 0, failed: 0 });
  expect(await completedEntries(id)).toHaveLength(1);
  // one finished entry per item: the losing writers added none
  const told = await batches.finishedAfter(id, '0-0', 2 * n);
  expect(told).toHaveLength(n);
  expect(new Set(told.map((e) => e.item.id))).toEqual(new Set(items.map((i) => i.id)));
});

it('cancels a page of items in one script exactly as one cancel per item does', async () => {
  const hook = { url: 'https://hooks.example/cancel', events: ['generation.cancelled' as const, 'batch.completed' as const] };
  // the same batch twice: one cancelled item by item, the other in one script
  const one = await newBatch(6, hook);
  const many = await newBatch(6, hook);
  for (const { items } of [one, many]) {
    await store.markActive(items[0]!, 1);
    await store.complete(items[0]!, result);
    await store.markActive(items[1]!, 1);
  }
  const usageBefore = await redis.hgetall(keys.usage(TENANT));
  const cancelHeard: string[] = [];
  const onMessage = (ch: string, message: string) => ch === keys.cancelChannel() && cancelHeard.push(message);
  listener.on('message', onMessage);
  await listener.subscribe(keys.cancelChannel());
  let heard: { type: string; [k: string]: unknown }[] = [];
  try {
    for (const item of one.items) await store.cancel(item);
    heard = await heardDuring(many.id, async () => {
      // an id whose record is gone is passed over
      expect(await store.cancelBatchItems({ id: many.id, tenant: TENANT }, [...many.items.map((i) => i.id), newId('gen')])).toBe(5);
    });
    expect(await store.cancelBatchItems({ id: many.id, tenant: TENANT }, many.items.map((i) => i.id))).toBe(0);
    await redis.publish(keys.cancelChannel(), 'end');
    await new Promise<void>((resolve) => {
      const wait = () => (cancelHeard.includes('end') ? resolve() : setTimeout(wait, 5));
      wait();
    });
  } finally {
    listener.off('message', onMessage);
    await listener.unsubscribe(keys.cancelChannel());
  }
  // the running item's worker is told, and only it
  expect(cancelHeard).toEqual([many.items[1]!.id, 'end']);
  expect(await counts(many.id)).toEqual({ status: 'completed', queued: 0, active: 0, completed: 1, failed: 0, cancelled: 5 });
  expect(await counts(many.id)).toEqual(await counts(one.id));
  // the items the script cancelled are told as ended, as when cancelled one by one
  const ended = async (id: string) => (await batches.finishedAfter(id, '0-0', 10)).map((e) => [e.item.index, e.item.status]);
  expect(await ended(many.id)).toEqual(await ended(one.id));
  expect(await ended(many.id)).toEqual([[0, 'completed'], [1, 'cancelled'], [2, 'cancelled'], [3, 'cancelled'], [4, 'cancelled'], [5, 'cancelled']]);

  const shape = async (ref: GenerationRef) => {
    const r = await store.get(ref.id);
    const ttl = await redis.ttl(keys.generation(ref.id));
    // an item that ends while its batch runs has no expiry of its own: the retention sweep owns it
    const swept = ttl === -1 && (await redis.zscore(keys.recordExpiry(), `${ref.id}|${TENANT}`)) !== null;
    return { status: r?.status, stage: r?.stage, error: r?.error, completed: r?.completedAt !== undefined, bounded: ttl > RETENTION - 60 || swept };
  };
  for (let i = 0; i < 6; i++) expect(await shape(many.items[i]!)).toEqual(await shape(one.items[i]!));
  expect(await shape(many.items[3]!)).toEqual({ status: 'cancelled', stage: 'queued', error: { code: 'cancelled', message: 'Cancelled by request', retryable: false }, completed: true, bounded: true });
  // indexes, events, webhook outbox and usage: each as many as the one-by-one cancels made
  const cancelledIndex = await redis.zrange(keys.tenantGenerations(TENANT, 'cancelled'), '0', '-1');
  for (const item of many.items.slice(1)) expect(cancelledIndex).toContain(item.id);
  expect(await redis.zscore(keys.tenantGenerations(TENANT, 'queued'), many.items[3]!.id)).toBeNull();
  expect(heard.filter((m) => m.type === 'item').map((m) => [m.index, m.from, m.status])).toEqual([
    [1, 'active', 'cancelled'],
    [2, 'queued', 'cancelled'],
    [3, 'queued', 'cancelled'],
    [4, 'queued', 'cancelled'],
    [5, 'queued', 'cancelled'],
  ]);
  const entries = ((await redis.xrange(keys.webhookOutbox(), '-', '+')) as [string, string[]][]).map(([, f]) => f);
  const eventsOf = (batchId: string) => entries.filter((f) => f.includes(batchId) || f.some((v) => v.includes(`"batchId":"${batchId}"`))).map((f) => f[f.indexOf('event') + 1]);
  expect(eventsOf(many.id).sort()).toEqual(eventsOf(one.id).sort());
  expect(eventsOf(many.id).filter((e) => e === 'generation.cancelled')).toHaveLength(5);
  expect(await completedEntries(many.id)).toHaveLength(1);
  const usageAfter = await redis.hgetall(keys.usage(TENANT));
  const added = Object.keys(usageAfter).filter((k) => k.endsWith(':cancelled')).map((k) => Number(usageAfter[k]) - Number(usageBefore[k] ?? 0));
  expect(added).toEqual([10]);
});

it('cancelling marks a batch once and keeps it in the feeder’s sight until its cancel is noted done; a batch gone meanwhile is not written back', async () => {
  const { id } = await newBatch(2);
  // every item released already: the feeder had let it go
  await redis.zrem(keys.batchesFeeding(), `${TENANT}|${id}`);
  expect(await batches.markCancelled({ id, tenant: TENANT }, '2099-01-01T00:00:00.000Z')).toBe(true);
  expect(await batches.markCancelled({ id, tenant: TENANT }, '2099-01-02T00:00:00.000Z')).toBe(false);
  expect(await redis.hget(keys.batch(id), 'cancelledAt')).toBe('2099-01-01T00:00:00.000Z');
  // before: taken off the list, so a cancel stopped part-way was finished by no one
  expect(await redis.zscore(keys.batchesFeeding(), `${TENANT}|${id}`)).not.toBeNull();
  await batches.noteCancelProgress({ id, tenant: TENANT }, 1, false);
  await batches.noteCancelProgress({ id, tenant: TENANT }, 0, false);
  expect(await redis.hmget(keys.batch(id), 'cancelledTo', 'cancelsDone')).toEqual(['1', null]);
  await batches.noteCancelProgress({ id, tenant: TENANT }, 2, true);
  expect(await redis.hmget(keys.batch(id), 'cancelledTo', 'cancelsDone')).toEqual(['2', '1']);
  expect(await redis.zscore(keys.batchesFeeding(), `${TENANT}|${id}`)).toBeNull();
  // its retention ended between the read and the cancel
  const gone = newId('batch');
  await redis.zadd(keys.batchesFeeding(), 0, `${TENANT}|${gone}`);
  expect(await batches.markCancelled({ id: gone, tenant: TENANT }, '2026-01-01T00:00:00.000Z')).toBe(false);
  await batches.noteCancelProgress({ id: gone, tenant: TENANT }, 2, true);
  expect(await redis.exists(keys.batch(gone))).toBe(0);
  expect(await redis.zscore(keys.batchesFeeding(), `${TENANT}|${gone}`)).toBeNull();
});

it('the orphan sweep finds the items a cancel stopped part-way did not reach as uncancelled, not lost', async () => {
  const { id, items } = await newBatch(3);
  await redis.hset(keys.batch(id), 'released', '1');
  await batches.markCancelled({ id, tenant: TENANT }, new Date().toISOString());
  await store.cancelBatchItems({ id, tenant: TENANT }, [items[0]!.id]);
  const found = (await new RecordRetention(redis, keys).findOrphans('gen_zzzzzzzzz', (gen) => `${prefix}:fakejob:${gen}`)).filter((r) => r.ref.batchId === id);
  // before: 'lost', which fails them as job_lost (counted failed, generation.failed sent) for a batch the client cancelled
  expect(found.map((r) => `${r.kind} ${r.ref.id}`).sort()).toEqual([`uncancelled ${items[1]!.id}`, `uncancelled ${items[2]!.id}`].sort());
  await batches.noteCancelProgress({ id, tenant: TENANT }, 3, true);
});

it('the orphan sweep does not take an item released between its job read and its cursor read for one whose job was lost', async () => {
  const { id, items } = await newBatch(3);
  // the feeder released items 0 and 1; item 0's job was lost, item 1's was added while the sweep read
  await redis.hset(keys.batch(id), 'released', '2');
  const existing = `${prefix}:fakejob:present`;
  await redis.set(existing, 'job');
  const reads = new Map<string, number>();
  const jobKey = (gen: string) => {
    const n = (reads.get(gen) ?? 0) + 1;
    reads.set(gen, n);
    return gen === items[1]!.id && n > 1 ? existing : `${prefix}:fakejob:${gen}`;
  };
  const found = (await new RecordRetention(redis, keys).findOrphans('gen_zzzzzzzzz', jobKey)).filter((r) => r.ref.batchId === id);
  // before: item 1 too, failed as job_lost just as its job arrived; item 2 is not released, so no orphan
  expect(found.map((r) => [r.kind, r.ref.id])).toEqual([['lost', items[0]!.id]]);
});

it('the orphan sweep removes the items of a batch whose writing stopped part-way once it expired, and leaves a batch being written alone', async () => {
  const unconfirmed = async (n: number) => {
    const id = newId('batch');
    const base: Omit<BatchRecord, 'createdAt'> = { id, tenant: TENANT, status: 'in_progress', total: n, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, metadata: null };
    expect((await batches.begin(base, 600)).outcome).toBe('created');
    const items = Array.from({ length: n }, (_, index) => ({ id: newId('gen'), fileToken: newFileToken(), request: { topic: `item ${index}`, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index }));
    expect(await batches.addItems({ id, tenant: TENANT }, items, 600)).toBe(true);
    return { id, items };
  };
  const writing = await unconfirmed(2);
  const stopped = await unconfirmed(3);
  // its writer died and could not clean up: the provisional batch and its list expired
  await redis.del(keys.batch(stopped.id), keys.batchItems(stopped.id));
  const retention = new RecordRetention(redis, keys);
  const jobKey = (gen: string) => `${prefix}:fakejob:${gen}`;
  const found = (await retention.findOrphans('gen_zzzzzzzzz', jobKey)).filter((o) => o.ref.batchId === writing.id || o.ref.batchId === stopped.id);
  // before: the same three, but failed as job_lost, each with a webhook, for a batch the client was told was refused
  expect(found.map((o) => `${o.kind} ${o.ref.id}`).sort()).toEqual(stopped.items.map((i) => `unwritten ${i.id}`).sort());
  await retention.removeUnwritten(found.map((o) => o.ref));
  for (const item of stopped.items) {
    expect(await redis.exists(keys.generation(item.id))).toBe(0);
    for (const index of [keys.tenantGenerations(TENANT), keys.tenantGenerations(TENANT, 'queued')]) expect(await redis.zscore(index, item.id)).toBeNull();
  }
  for (const item of writing.items) expect(await redis.zscore(keys.tenantGenerations(TENANT, 'queued'), item.id)).not.toBeNull();
  await batches.abandon({ id: writing.id, tenant: TENANT });
});

it('a tenant whose only records go unaccepted (removed by the orphan sweep, or by the writer giving up) is forgotten with them', async () => {
  const writeFor = async (tenant: string) => {
    const id = newId('batch');
    const base: Omit<BatchRecord, 'createdAt'> = { id, tenant, status: 'in_progress', total: 2, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, metadata: null };
    expect((await batches.begin(base, 600)).outcome).toBe('created');
    const items = Array.from({ length: 2 }, (_, index) => ({ id: newId('gen'), fileToken: newFileToken(), request: { topic: `item ${index}`, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index }));
    expect(await batches.addItems({ id, tenant }, items, 600)).toBe(true);
    expect(await redis.sismember(keys.tenants(), tenant)).toBe(1);
    return { id, refs: items.map((i) => ({ id: i.id, tenant, batchId: id })) };
  };
  // its writer died: the orphan sweep finds the items unwritten and removes them
  const swept = await writeFor('t-unwritten');
  await redis.del(keys.batch(swept.id), keys.batchItems(swept.id));
  await new RecordRetention(redis, keys).removeUnwritten(swept.refs);
  // its writer gave up on it
  const given = await writeFor('t-abandoned');
  await batches.abandon({ id: given.id, tenant: 't-abandoned' });
  // before: both stayed in the set for good (until a record of theirs was swept), visited by every sweep
  expect(await redis.smismember(keys.tenants(), 't-unwritten', 't-abandoned')).toEqual([0, 0]);
  // a tenant with records left keeps its place
  const kept = await writeFor('t-kept');
  const other = await writeFor('t-kept');
  await new RecordRetention(redis, keys).removeUnwritten(kept.refs);
  expect(await redis.sismember(keys.tenants(), 't-kept')).toBe(1);
  await batches.abandon({ id: other.id, tenant: 't-kept' });
  expect(await redis.sismember(keys.tenants(), 't-kept')).toBe(0);
});

it('the orphan sweep ends a record whose job failed unheard, with the job reason, and leaves one whose job is still due', async () => {
  const { id, items } = await newBatch(2);
  await redis.hset(keys.batch(id), 'released', '2');
  for (const item of items) await store.markActive(item, 1);
  const jobKey = (gen: string) => `${prefix}:fakejob:${gen}`;
  // BullMQ failed item 0 for stalling too often, and the process that would have ended its record died; item 1 waits for a retry
  await redis.hset(jobKey(items[0]!.id), 'timestamp', '1', 'finishedOn', '2', 'failedReason', 'job stalled more than allowable limit');
  await redis.hset(jobKey(items[1]!.id), 'timestamp', '1', 'attemptsMade', '1');
  const found = (await new RecordRetention(redis, keys).findOrphans('gen_zzzzzzzzz', jobKey)).filter((o) => o.ref.batchId === id);
  // before: none (a job was there), and the record stayed active until the job was trimmed
  expect(found).toEqual([{ kind: 'ended', ref: items[0], reason: 'job stalled more than allowable limit' }]);
  await redis.del(jobKey(items[0]!.id), jobKey(items[1]!.id));
});

it('a batch being written lives its writer’s lease past each chunk, while its idempotency claim keeps its own time', async () => {
  const id = newId('batch');
  const claimKey = keys.idempotency(TENANT, `lease-${id}`);
  const base: Omit<BatchRecord, 'createdAt'> = { id, tenant: TENANT, status: 'in_progress', total: 2, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, metadata: null };
  expect((await batches.begin(base, 30, { key: claimKey, value: `hash|${id}`, ttlSeconds: 600 })).outcome).toBe('created');
  expect(await redis.ttl(keys.batch(id))).toBeLessThanOrEqual(30);
  // before: the claim lived only as long as the provisional batch
  expect(await redis.ttl(claimKey)).toBeGreaterThan(590);
  // time passes; the next chunk renews the lease of the batch and its list
  await redis.expire(keys.batch(id), 2);
  const item = (index: number) => ({ id: newId('gen'), fileToken: newFileToken(), request: { topic: `lease ${index}`, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index });
  // an item that ended while the batch is written started its finished-items stream, with the batch's expiry
  await redis.xadd(keys.batchFinished(id), '*', 'index', '0');
  await redis.expire(keys.batchFinished(id), 2);
  expect(await batches.addItems({ id, tenant: TENANT }, [item(0)], 30, 600)).toBe(true);
  // before: the batch kept its first expiry (the writer's lease was not renewed), and so did the stream
  expect(await redis.ttl(keys.batch(id))).toBeGreaterThan(20);
  expect(await redis.ttl(keys.batchFinished(id))).toBeGreaterThan(20);
  // the list outlives the batch, so that what a dead writer wrote can be found
  expect(await redis.ttl(keys.batchItems(id))).toBeGreaterThan(590);
  await batches.abandon({ id, tenant: TENANT });
  await redis.del(claimKey);
});

it('abandon keeps a batch that was confirmed after all', async () => {
  const { id, items } = await newBatch(2);
  // its writer took the confirm for failed (the reply was lost) and cleans up
  await batches.abandon({ id, tenant: TENANT });
  // before: the records deleted under the feeder, the tenant's listing entry left behind
  expect((await batches.get(id))?.total).toBe(2);
  for (const item of items) expect(await redis.exists(keys.generation(item.id))).toBe(1);
});
