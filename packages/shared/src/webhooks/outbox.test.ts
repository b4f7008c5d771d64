import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { keysFor } from '../keys';
import { decodeRecord, encodeFields } from '../records/codec';
import { WEBHOOK_RECORD_FIELDS } from '../records/lua/outbox';
import { presentGeneration, type GenerationRecord } from '../schemas/generation';
import { appendBatchEvent, outboxBacklog, OUTBOX_GROUP, parseOutboxEntry } from './outbox';
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
  // the same ids as ever: a delivery taken over after an upgrade keeps its job and webhook-id
  expect(['1718000000000-35', '9999999999999-0', '1-1'].map(deliveryIdFor)).toEqual(['dlv_0lx8kuby8z', 'dlv_3jlxpt2pr0', 'dlv_0000000011']);
});

it('an entry without its fields is reported, not thrown', () => {
  expect(parseOutboxEntry('1-0', ['event', 'generation.completed'], { filesBaseUrl: 'https://api.example/files' })).toEqual({ invalid: expect.any(String) });
});

describe('a generation entry', () => {
  const links = { filesBaseUrl: 'https://api.example/files' };
  const record: GenerationRecord = {
    id: 'gen_snap1',
    tenant: 't1',
    status: 'completed',
    stage: 'done',
    progress: 100,
    request: { topic: 'a lighthouse', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' },
    metadata: { order: '7' },
    priority: 'normal',
    webhook: { url: 'https://hooks.example/g', events: ['generation.completed'] },
    attempts: 1,
    createdAt: '2025-01-01T00:00:00.000Z',
    completedAt: '2025-01-01T00:00:05.000Z',
    result: { image: { key: 'tok/original.png', width: 1344, height: 768, format: 'png', bytes: 100 }, thumbnails: [{ size: 256, key: 'tok/thumb-256.webp', width: 256, height: 146, format: 'webp', bytes: 10 }] },
    fileToken: 'tok',
  };
  // the record hash as the transition's snapshot carries it, with the outbox fragment's own fields
  const snapshotOf = (r: object) => {
    const flat = encodeFields(r);
    const hash: Record<string, string> = Object.fromEntries(WEBHOOK_RECORD_FIELDS.map((f) => [f, '1735689604000']));
    for (let i = 0; i < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
    return hash;
  };
  const entry = (hash: Record<string, string>) => ['gen', 'gen_snap1', 'tenant', 't1', 'event', 'generation.completed', 'at', '1735689605000', 'record', JSON.stringify(hash)];

  it('reads back with data exactly as GET presents the record', () => {
    const hash = snapshotOf(record);
    const event = parseOutboxEntry('1-0', entry(hash), links);
    expect(event).toMatchObject({ subject: 'gen_snap1', tenant: 't1', target: record.webhook, host: 'hooks.example' });
    expect(JSON.stringify((event as { data: unknown }).data)).toBe(JSON.stringify(presentGeneration(decodeRecord(hash)!, links)));
    for (const field of WEBHOOK_RECORD_FIELDS) expect(JSON.stringify(event)).not.toContain(field);
  });

  it('a damaged snapshot is refused, not sent', () => {
    const hash = snapshotOf(record);
    expect(parseOutboxEntry('1-0', entry({ ...hash, status: 'nonsense' }), links)).toEqual({ invalid: expect.any(String) });
    expect(parseOutboxEntry('1-0', entry({ ...hash, request: '' }), links)).toEqual({ invalid: expect.any(String) });
    expect(parseOutboxEntry('1-0', entry({ ...hash, webhook: '{"url":"not a url"}' }), links)).toEqual({ invalid: expect.any(String) });
    expect(parseOutboxEntry('1-0', entry({ ...hash, webhook: '{"url":"ftp://hooks.example/g"}' }), links)).toEqual({ invalid: expect.any(String) });
    expect(parseOutboxEntry('1-0', entry({ ...hash, webhook: '{"events":["generation.completed"]}' }), links)).toEqual({ invalid: expect.any(String) });
    expect(parseOutboxEntry('1-0', entry({ ...hash, result: '{"image":{}}' }), links)).toEqual({ invalid: expect.any(String) });
  });
});

it("the backlog counts what no dispatcher has read, what one has read and not settled, and the oldest event's age", async () => {
  const own = keysFor(`${prefix}-backlog`);
  // no outbox yet: nothing waits
  expect(await outboxBacklog(redis, own)).toEqual({ waiting: 0, dispatching: 0, oldestAgeSeconds: 0 });
  const stream = own.webhookOutbox();
  await redis.xgroup('CREATE', stream, OUTBOX_GROUP, '0', 'MKSTREAM');
  const [s, us] = await redis.time();
  // an event written 5 s ago by Redis's clock, then four more now
  const old = Number(s) * 1000 + Math.floor(Number(us) / 1000) - 5000;
  await redis.xadd(stream, `${old}-0`, 'event', 'generation.completed');
  for (let i = 0; i < 4; i++) await redis.xadd(stream, '*', 'event', 'generation.completed');
  // one dispatcher reads two, settles one (acknowledged and deleted, as the dispatcher does)
  const read = (await redis.xreadgroup('GROUP', OUTBOX_GROUP, 'd1', 'COUNT', 2, 'STREAMS', stream, '>')) as [string, [string, string[]][]][];
  const [first, second] = read[0]![1];
  await redis.multi().xack(stream, OUTBOX_GROUP, second![0]).xdel(stream, second![0]).exec();
  const backlog = await outboxBacklog(redis, own);
  expect({ ...backlog, oldestAgeSeconds: Math.round(backlog.oldestAgeSeconds) }).toEqual({ waiting: 3, dispatching: 1, oldestAgeSeconds: 5 });
  // the oldest settled too: the age is the next one's
  await redis.multi().xack(stream, OUTBOX_GROUP, first![0]).xdel(stream, first![0]).exec();
  expect(await outboxBacklog(redis, own)).toMatchObject({ waiting: 3, dispatching: 0, oldestAgeSeconds: expect.any(Number) });
  expect((await outboxBacklog(redis, own)).oldestAgeSeconds).toBeLessThan(2);
  await redis.del(stream);
});
