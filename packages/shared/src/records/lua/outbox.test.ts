import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { newFileToken, newId } from '../../ids';
import { keysFor } from '../../keys';
import type { GenerationRecord } from '../../schemas/generation';
import type { WebhookTarget } from '../../schemas/request';
import { parseOutboxEntry } from '../../webhooks/outbox';
import { GenerationStore } from '../generation-store';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-outbox-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;
let store: GenerationStore;

function record(webhook?: WebhookTarget): GenerationRecord {
  return {
    id: newId('gen'),
    tenant: 't1',
    status: 'queued',
    stage: 'queued',
    progress: 0,
    request: { topic: 'x', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' },
    metadata: null,
    priority: 'normal',
    attempts: 0,
    createdAt: new Date().toISOString(),
    fileToken: newFileToken(),
    ...(webhook ? { webhook } : {}),
  };
}

const result = { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] };

async function outboxOf(id: string) {
  const entries = (await redis.xrange(keys.webhookOutbox(), '-', '+')) as [string, string[]][];
  return entries.map(([entryId, flat]) => ({ entryId, flat })).filter((e) => e.flat[e.flat.indexOf('gen') + 1] === id);
}
const eventsOf = async (id: string) => (await outboxOf(id)).map((e) => e.flat[e.flat.indexOf('event') + 1]);

beforeAll(() => {
  redis = new Redis(url);
  store = new GenerationStore(redis, keys, 3600);
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

it('without a webhook nothing is appended', async () => {
  const r = record();
  await store.create(r);
  await store.markActive(r, 1);
  await store.complete(r, result);
  expect(await eventsOf(r.id)).toEqual([]);
});

it('without events, only completed and failed are appended', async () => {
  const r = record({ url: 'https://hooks.example/x' });
  await store.create(r);
  await store.markActive(r, 1);
  await store.setStage(r, 'downloading');
  await store.complete(r, result);
  expect(await eventsOf(r.id)).toEqual(['generation.completed']);
});

it('started goes out once across retries; progress at most once per 500 ms; the entry is a snapshot', async () => {
  const r = record({ url: 'https://hooks.example/x', events: ['generation.started', 'generation.progress', 'generation.completed'] });
  await store.create(r);
  await store.markActive(r, 1);
  await store.setStage(r, 'downloading');
  await store.setStage(r, 'processing'); // within 500 ms of the previous one: dropped
  await store.retrying(r, { code: 'x', message: 'y', retryable: true });
  await store.markActive(r, 2);
  await new Promise((resolve) => setTimeout(resolve, 550));
  await store.setStage(r, 'storing');
  await store.complete(r, result);
  await store.fail(r, { code: 'late', message: 'ignored', retryable: false }); // terminal: refused, nothing appended
  expect(await eventsOf(r.id)).toEqual(['generation.started', 'generation.progress', 'generation.progress', 'generation.completed']);

  const entries = await outboxOf(r.id);
  const parsed = entries.map((e) => parseOutboxEntry(e.entryId, e.flat, { filesBaseUrl: 'https://api.example/files' }));
  const stages = parsed.map((p) => ('invalid' in p ? p.invalid : (p.data as { stage: string }).stage));
  expect(stages).toEqual(['generating', 'downloading', 'storing', 'done']);
  const last = parsed.at(-1)!;
  if ('invalid' in last) throw new Error(last.invalid);
  expect(last).toMatchObject({ subject: r.id, tenant: 't1', event: 'generation.completed', target: { url: 'https://hooks.example/x' } });
  expect(last.data).toMatchObject({ id: r.id, status: 'completed', progress: 100, result: { image: { url: 'https://api.example/files/k/original.png' } } });
  expect(Math.abs(last.at - Date.now())).toBeLessThan(60_000);
});
