import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { newFileToken, newId } from '../ids';
import { keysFor } from '../keys';
import { GenerationStore } from '../records/generation-store';
import type { GenerationRecord } from '../schemas/generation';
import { EventHub } from './event-hub';
import { WaiterChannel } from './waiter-channel';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-waiters-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;
let sub: Redis;
let store: GenerationStore;
let channel: WaiterChannel;

const record = (notify?: string): Omit<GenerationRecord, 'createdAt'> => ({
  id: newId('gen'),
  tenant: 't1',
  status: 'queued',
  stage: 'queued',
  progress: 0,
  request: { topic: 'x', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' },
  metadata: null,
  priority: 'normal',
  attempts: 0,
  fileToken: newFileToken(),
  ...(notify ? { notify } : {}),
});

beforeAll(async () => {
  redis = new Redis(url);
  sub = new Redis(url);
  store = new GenerationStore(redis, keys, 3600);
  channel = new WaiterChannel(new EventHub(sub), store, keys.waiterChannel('p1'));
  expect(channel.isReady).toBe(false);
  await channel.start();
});

afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await Promise.all([redis.quit(), sub.quit()]);
});

it('wakes the waiter of a generation that names the channel, with the record its end carried', async () => {
  expect(channel.isReady).toBe(true);
  const mine = record(channel.channel);
  const other = record(channel.channel);
  const watch = channel.watch(mine.id);
  const created = await store.create(mine);
  if (created.outcome !== 'created') throw new Error('not created');
  const waiting = watch.untilTerminal(10_000, undefined, created.record);
  // another generation's end does not wake it
  await store.create(other);
  await store.cancel(other);
  await store.complete(mine, { image: { key: `${mine.fileToken}/original.png`, width: 4, height: 4, format: 'png', bytes: 10 }, thumbnails: [] });
  const ended = await waiting;
  expect(ended).toEqual(await store.get(mine.id));
  expect(ended?.status).toBe('completed');
  await watch.close();
});

it('answers the record as created when the wait runs out, and nothing is left behind', async () => {
  const r = record(channel.channel);
  const watch = channel.watch(r.id);
  const created = await store.create(r);
  if (created.outcome !== 'created') throw new Error('not created');
  const started = Date.now();
  const latest = await watch.untilTerminal(200, undefined, created.record);
  expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  expect(latest?.status).toBe('queued');
  await watch.close();
  expect(channel.size).toBe(0);
});

it('a reconnect before the watched generation is written does not end the wait', async () => {
  const mine = record(channel.channel);
  const watch = channel.watch(mine.id);
  // the subscriber reconnects after the watch began and before the record is written: the re-read finds nothing yet
  sub.disconnect(true);
  await new Promise<void>((resolve) => sub.once('ready', () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const created = await store.create(mine);
  if (created.outcome !== 'created') throw new Error('not created');
  const waiting = watch.untilTerminal(3000, undefined, created.record);
  setTimeout(() => void store.cancel(mine), 300);
  // before: woken by the empty re-read, it answered at once with the record still queued
  expect((await waiting)?.status).toBe('cancelled');
  await watch.close();
});

it('after a reconnect, an end that comes a moment later is still found, once', async () => {
  // its end names no waiter channel: the channel learns of it only by reading the record again
  const mine = record();
  const created = await store.create(mine);
  if (created.outcome !== 'created') throw new Error('not created');
  const watch = channel.watch(mine.id);
  const ended: string[] = [];
  const waiting = watch.untilTerminal(10_000, undefined, created.record).then((r) => void ended.push(r!.status));
  sub.disconnect(true);
  await new Promise<void>((resolve) => sub.once('ready', () => resolve()));
  // ended after the first re-read (its message went out before the channel was subscribed again)
  await new Promise((resolve) => setTimeout(resolve, 100));
  await store.cancel(mine);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  // before: read once, at the reconnect, and the wait slept to its end
  expect(ended).toEqual(['cancelled']);
  await waiting;
  await watch.close();
});
