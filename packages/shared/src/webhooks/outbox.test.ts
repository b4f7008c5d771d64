import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { keysFor } from '../keys';
import { appendBatchEvent, parseOutboxEntry } from './outbox';
import { deliveryIdFor, webhookIdFor } from './payload';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-batchseam-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;

beforeAll(() => {
  redis = new Redis(url);
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

it('a batch event appended to the outbox reads back as a delivery of the batch', async () => {
  const data = { id: 'batch_abc', status: 'completed', total: 2 };
  const entryId = await appendBatchEvent(redis, keys, { batchId: 'batch_abc', tenant: 't1', type: 'batch.completed', target: { url: 'https://hooks.example/b' }, data });
  const [[id, flat]] = (await redis.xrange(keys.webhookOutbox(), entryId, entryId)) as [string, string[]][] as [[string, string[]]];
  expect(parseOutboxEntry(id, flat, { filesBaseUrl: 'https://api.example/files' })).toMatchObject({ subject: 'batch_abc', tenant: 't1', event: 'batch.completed', target: { url: 'https://hooks.example/b' }, data });
});

it('delivery and message ids derive from the entry id, one to one', () => {
  const ids = ['1718000000000-0', '1718000000000-1', '1718000000001-0', '1718000000000-35', '1718000000000-36'].map(deliveryIdFor);
  expect(new Set(ids).size).toBe(5);
  expect(deliveryIdFor('1718000000000-1')).toBe(deliveryIdFor('1718000000000-1'));
  expect(ids.every((d) => /^dlv_[a-z0-9]+$/.test(d))).toBe(true);
  expect(webhookIdFor(ids[0]!)).toBe(`msg_${ids[0]!.slice(4)}`);
});

it('an entry without its fields is reported, not thrown', () => {
  expect(parseOutboxEntry('1-0', ['event', 'generation.completed'], { filesBaseUrl: 'https://api.example/files' })).toEqual({ invalid: expect.any(String) });
});
