import { readdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { ERROR_CODES, FsStorage, GenerationFailure, type GeneratorProvider } from '@imagegen/shared';
import { eventually, sleep } from './support/net';
import { openMaintenance, type Maintenance } from './support/maintenance';
import { keysUnder } from './support/redis';
import { postJson, startStack, type Stack } from './support/stack';

/** A key's kind: ids, tokens and numbers blanked, so two snapshots compare by what they hold. */
const kindOf = (key: string) => key.replace(/gen_[0-9a-z]+/g, '<gen>').replace(/\d+/g, '<n>');

function countKinds(keys: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[kindOf(k)] = (out[kindOf(k)] ?? 0) + 1;
  return out;
}

describe('bounded Redis: what 1,000 generations leave once their retention ends', () => {
  let stack: Stack;
  let maintenance: Maintenance;
  let png: Buffer;
  let jpeg: Buffer;
  beforeAll(async () => {
    png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366aa' } }).png().toBuffer();
    jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#aa6633' } }).jpeg().toBuffer();
    stack = await startStack({
      name: 'bounds',
      worker: false,
      env: { RECORD_RETENTION_HOURS: '0.001', RATE_LIMIT_PER_MINUTE: '100000', GENERATOR_MAX_ATTEMPTS: '2', GENERATOR_BACKOFF_MS: '10', WORKER_CONCURRENCY: '16' },
    });
    maintenance = openMaintenance(stack.prefix);
  });
  afterAll(async () => {
    await maintenance.close();
    await stack.close();
  });

  it('completed, failed and cancelled generations (some with spooled bytes) leave nothing behind after the sweep', async () => {
    // bytes at once; topics say how it goes: "fail" is refused, "spool" cannot be stored (so its
    // bytes are spooled and it waits for the store, until cancelled)
    const provider: GeneratorProvider = {
      name: 'builtin',
      async generate(request) {
        if (request.topic.startsWith('fail')) throw new GenerationFailure(ERROR_CODES.rejected, 'refused', false);
        return request.topic.startsWith('spool') ? { kind: 'bytes', data: jpeg, contentType: 'image/jpeg' } : { kind: 'bytes', data: png, contentType: 'image/png' };
      },
    };
    class NoJpegOriginals extends FsStorage {
      override async put(key: string, data: Buffer) {
        if (/\/original-[0-9a-f]{8}\.jpg$/.test(key)) throw new Error('disk full');
        return super.put(key, data);
      }
    }
    const storage = new NoJpegOriginals(stack.dataDir);
    const submit = (topic: string) => postJson(`${stack.baseUrl}/v1/generations`, { topic });
    const idx = (status: string) => stack.redis.zcard(stack.api.keys.tenantGenerations('default', status as never));

    await stack.startWorker({ ORPHAN_MIN_AGE_MS: '0', MAINTENANCE_INTERVAL_MS: '3600000' }, { provider, storage });
    // warm up so that what a running system always holds (queue metadata, event streams) exists before the snapshot
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'warm up' }, { Prefer: 'wait=30' })).body.status).toBe('completed');
    await sleep(4500);
    await maintenance.sweepOnce();
    const before = (await keysUnder(stack.redis, stack.prefix)).filter((k) => !k.includes(':ratelimit:'));

    // 200 cancelled while queued (the queue paused meanwhile, so none starts)
    await stack.api.queues.generate.pause();
    const cancelled = [];
    for (let i = 0; i < 200; i += 20) cancelled.push(...(await Promise.all(Array.from({ length: 20 }, (_, j) => submit(`cancel ${i + j}`)))));
    for (const c of cancelled) expect((await fetch(`${stack.baseUrl}/v1/generations/${c.body.id}`, { method: 'DELETE' })).status).toBe(200);
    await stack.api.queues.generate.resume();

    const topics = [...Array.from({ length: 600 }, (_, i) => `ok ${i}`), ...Array.from({ length: 150 }, (_, i) => `fail ${i}`), ...Array.from({ length: 50 }, (_, i) => `spool ${i}`)];
    const waiting: string[] = [];
    for (let i = 0; i < topics.length; i += 25) {
      const answers = await Promise.all(topics.slice(i, i + 25).map(submit));
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202));
      waiting.push(...answers.filter((a) => String(a.body.request.topic).startsWith('spool')).map((a) => a.body.id as string));
    }
    // every "spool" one waits for the store with its bytes spooled; then it is cancelled
    const spoolsSeen = await eventually(async () => {
      const spools = (await keysUnder(stack.redis, `${stack.prefix}:spool`)).length;
      const records = await Promise.all(waiting.map((id) => stack.api.store.get(id)));
      return spools === waiting.length && records.every((r) => r?.error?.code === 'storage_failed') ? spools : undefined;
    }, 180_000, 200);
    for (const id of waiting) expect((await fetch(`${stack.baseUrl}/v1/generations/${id}`, { method: 'DELETE' })).status).toBe(200);
    await eventually(async () => ((await idx('queued')) + (await idx('active')) === 0 ? true : undefined), 180_000, 200);
    expect(await idx('completed')).toBe(600);
    expect(await idx('failed')).toBe(150);
    expect(await idx('cancelled')).toBe(250);
    expect(spoolsSeen).toBe(50);

    await sleep(4500);
    const swept = await maintenance.sweepOnce();
    expect(swept.records).toBe(1000);

    const after = await keysUnder(stack.redis, stack.prefix);
    // the rate limiter's window keys expire by themselves within the minute
    for (const k of after.filter((key) => key.includes(':ratelimit:'))) expect(await stack.redis.ttl(k)).toBeLessThanOrEqual(61);
    // BullMQ's per-minute metrics are capped lists (maxDataPoints), one per queue and outcome, whatever the volume
    const isMetrics = (k: string) => /:metrics:(completed|failed)(:data)?$/.test(k);
    for (const k of after.filter((key) => key.endsWith(':data') && isMetrics(key))) expect(await stack.redis.llen(k)).toBeLessThanOrEqual(7 * 24 * 60);
    expect(countKinds(after.filter((k) => !k.includes(':ratelimit:') && !isMetrics(k)))).toEqual(countKinds(before.filter((k) => !isMetrics(k))));
    expect(after.filter((k) => k.includes(':spool:'))).toEqual([]);
    // and on disk: every generation's folder is gone
    expect((await readdir(path.join(stack.dataDir, 'files'))).filter((d) => !d.startsWith('.'))).toEqual([]);
  });
});

describe('orphans: a record whose job is gone', () => {
  let stack: Stack;
  let maintenance: Maintenance;
  beforeAll(async () => {
    stack = await startStack({ name: 'orphans', worker: false });
    maintenance = openMaintenance(stack.prefix);
  });
  afterAll(async () => {
    await maintenance.close();
    await stack.close();
  });

  it('a job removed from the queue by hand ends its record within one sweep', async () => {
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'removed by an operator' });
    await (await stack.api.queues.generate.getJob(created.body.id))!.remove();
    expect((await stack.api.store.get(created.body.id))!.status).toBe('queued');
    await stack.startWorker({ ORPHAN_MIN_AGE_MS: '0', MAINTENANCE_INTERVAL_MS: '3600000' });
    const result = await maintenance.sweepOnce();
    const record = (await stack.api.store.get(created.body.id))!;
    expect(record.status).toBe('failed');
    expect(record.error).toMatchObject({ code: 'job_lost', retryable: false });
    // (the scheduler may have run a sweep of its own at start; between them, one ended it)
    expect(result.orphans).toBeLessThanOrEqual(1);
    // a generation whose job exists is left alone
    const healthy = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'fine' }, { Prefer: 'wait=30' });
    expect(healthy.body.status).toBe('completed');
  });
});
