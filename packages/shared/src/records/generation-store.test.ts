import { randomBytes } from 'node:crypto';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { generateJobName, generateJobOptions } from '../catalog';
import { keysFor } from '../keys';
import { newFileToken, newId } from '../ids';
import { readGenerationMessage } from '../schemas/channel';
import type { GenerationRecord } from '../schemas/generation';
import { decodeRecord, packFields } from './codec';
import { GenerationStore, hashOf, type CreateOutcome, type IdempotencyClaim } from './generation-store';
import { CREATE_LUA } from './lua/create';
import { BULLMQ_ADD_ARGS, captureJobAdd, withJobAdds } from './lua/with-job-add';
import { RecordRetention } from './record-retention';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-store-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;
let sub: Redis;
let store: GenerationStore;
let retention: RecordRetention;

type NewRecord = Omit<GenerationRecord, 'createdAt'>;

function record(tenant = 't1', overrides: Partial<NewRecord> = {}): NewRecord {
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
    fileToken: newFileToken(),
    ...overrides,
  };
}

beforeAll(() => {
  redis = new Redis(url);
  sub = new Redis(url);
  store = new GenerationStore(redis, keys, 3600);
  retention = new RecordRetention(redis, keys);
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await Promise.all([redis.quit(), sub.quit()]);
});

it('round-trips a record, JSON fields included; createdAt is close to Redis time', async () => {
  const r = record();
  const created = await store.create(r);
  if (created.outcome !== 'created') throw new Error('not created');
  const [s] = await redis.time();
  expect(Math.abs(Date.parse(created.record.createdAt) - Number(s) * 1000)).toBeLessThan(2000);
  expect(created.record.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  expect(await store.get(r.id)).toEqual(created.record);
  expect(await store.get('gen_missing')).toBeNull();
});

it("createdAt is the time in the record's id (listings, ordered by id, are ordered by it), and no later stamp is before it", async () => {
  const [s, us] = await redis.time();
  const redisNow = Number(s) * 1000 + Math.floor(Number(us) / 1000);
  // an id made by a process whose reading of Redis's clock is 30 s ahead: every stamp after it, and
  // every event's time, is clamped to it
  const ahead = record('t1', { id: newId('gen', redisNow + 30_000), webhook: { url: 'https://hooks.example.com/in' } });
  const created = await store.create(ahead);
  if (created.outcome !== 'created') throw new Error('not created');
  expect(created.record.createdAt).toBe(new Date(redisNow + 30_000).toISOString());
  await store.markActive(ahead, 1);
  await store.fail(ahead, { code: 'internal', message: 'x', retryable: false });
  const ended = (await store.get(ahead.id))!;
  expect(ended.createdAt).toBe(created.record.createdAt);
  expect(ended.startedAt).toBe(created.record.createdAt);
  expect(ended.completedAt).toBe(created.record.createdAt);
  const events = (await redis.xrange(keys.webhookOutbox(), '-', '+')).map(([, f]) => hashOf(f)).filter((f) => f.gen === ahead.id);
  expect(events.map((f) => [f.event, Number(f.at)])).toEqual([['generation.failed', redisNow + 30_000]]);
  // one far from Redis's time (a host whose clock is not yet matched to Redis's) is not trusted: Redis's time
  const far = record('t1', { id: newId('gen', redisNow + 3_600_000) });
  const farCreated = await store.create(far);
  if (farCreated.outcome !== 'created') throw new Error('not created');
  expect(Math.abs(Date.parse(farCreated.record.createdAt) - redisNow)).toBeLessThan(2000);
});

it('a tenant reads only its own records', async () => {
  const r = record('owner');
  await store.create(r);
  expect(await store.getForTenant(r.id, 'owner')).not.toBeNull();
  expect(await store.getForTenant(r.id, 'someone-else')).toBeNull();
});

it('a hash that does not match the record schema is an error, not a half record', async () => {
  const r = record();
  await store.create(r);
  await redis.hset(keys.generation(r.id), 'status', 'exploded');
  await expect(store.get(r.id)).rejects.toThrow(/does not match its schema: status/);
});

it('progress only rises and startedAt is set once', async () => {
  const r = record();
  await store.create(r);
  await store.markActive(r, 1);
  const first = (await store.get(r.id))!;
  await store.setStage(r, 'processing');
  await store.transition(r, { progress: 20, stage: 'generating' });
  await new Promise((res) => setTimeout(res, 5));
  await store.markActive(r, 2);
  const after = (await store.get(r.id))!;
  expect(after.progress).toBe(65);
  expect(after.attempts).toBe(2);
  expect(after.startedAt).toBe(first.startedAt);
});

it('a terminal record is never rewritten, gets its retention TTL and is scheduled for the sweep', async () => {
  const r = record();
  await store.create(r);
  expect(await redis.ttl(keys.generation(r.id))).toBe(-1);
  expect(await store.cancel(r)).toBe('ok');
  expect(await redis.ttl(keys.generation(r.id))).toBeGreaterThan(3500);
  const due = Number(await redis.zscore(keys.recordExpiry(), `${r.id}|${r.tenant}`));
  expect(due).toBeGreaterThan(Date.now() + 3500_000);
  expect(await store.complete(r, { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] })).toBe('terminal');
  expect(await store.markActive(r, 1)).toBe('terminal');
  const after = (await store.get(r.id))!;
  expect(after.status).toBe('cancelled');
  expect(after.result).toBeUndefined();
  expect(await store.transition({ id: 'gen_nope', tenant: 't1' }, { progress: 5 })).toBe('missing');
});

it('complete clears the error of a failed attempt and the upstream URL checkpoint', async () => {
  const r = record();
  await store.create(r);
  await store.retrying(r, { code: 'upstream_unavailable', message: '503', retryable: true });
  await store.checkpoint(r, { upstreamUrl: 'http://upstream/file.png' });
  expect((await store.get(r.id))!.error?.code).toBe('upstream_unavailable');
  await store.complete(r, { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] });
  const done = (await store.get(r.id))!;
  expect(done.status).toBe('completed');
  expect(done.error).toBeUndefined();
  expect(done.upstreamUrl).toBeUndefined();
});

it('spooled bytes go when the generation ends, however it ends', async () => {
  const r = record();
  await store.create(r);
  expect(await store.spool(r, Buffer.from('paid-for bytes'), 3600, 1 << 20)).toBe(true);
  expect(await redis.exists(keys.spool(r.id))).toBe(1);
  await store.fail(r, { code: 'storage_failed', message: 'disk full', retryable: true });
  expect(await redis.exists(keys.spool(r.id))).toBe(0);
  expect((await store.get(r.id))!.spoolKey).toBeUndefined();
  // a generation that ended before the bytes were spooled does not keep them either
  expect(await store.spool(r, Buffer.from('late bytes'), 3600, 1 << 20)).toBe(false);
  expect(await redis.exists(keys.spool(r.id))).toBe(0);
});

it('spools no more bytes than the budget, every generation’s together, and counts only spools still held', async () => {
  const [a, b, c] = [record(), record(), record()];
  for (const r of [a, b, c]) await store.create(r);
  const kb = (n: number) => Buffer.alloc(n * 1024, 7);
  expect(await store.spool(a, kb(600), 3600, 1024 * 1024)).toBe(true);
  // before: kept whatever was held already, so a long outage filled Redis
  expect(await store.spool(b, kb(600), 3600, 1024 * 1024)).toBe(false);
  expect(await redis.exists(keys.spool(b.id))).toBe(0);
  expect((await store.get(b.id))!.spoolKey).toBeUndefined();
  expect(await store.spool(c, kb(400), 3600, 1024 * 1024)).toBe(true);
  // the same generation's bytes spooled again replace its own
  expect(await store.spool(a, kb(600), 3600, 1024 * 1024)).toBe(true);
  // a spool gone with its generation no longer counts
  await store.fail(a, { code: 'storage_failed', message: 'store away', retryable: true });
  expect(await store.spool(b, kb(600), 3600, 1024 * 1024)).toBe(true);
  expect(await redis.ttl(keys.spoolIndex())).toBeGreaterThan(3500);
  // bytes of a generation refused for want of room leave its own earlier spool counted, as it stays
  expect(await store.spool(c, kb(2000), 3600, 1024 * 1024)).toBe(false);
  expect(await redis.exists(keys.spool(c.id))).toBe(1);
  expect((await redis.zrangebyscore(keys.spoolIndex(), '-inf', '+inf')).sort()).toEqual([`${keys.spool(b.id)}|${600 * 1024}`, `${keys.spool(c.id)}|${400 * 1024}`].sort());
});

it('publishes each change on the generation channel', async () => {
  const r = record();
  await store.create(r);
  const messages: string[] = [];
  await sub.subscribe(keys.generationChannel(r.id));
  sub.on('message', (_c, m) => messages.push(m));
  await store.markActive(r, 1);
  await store.setStage(r, 'downloading');
  await store.fail(r, { code: 'x', message: 'y', retryable: false });
  await new Promise((res) => setTimeout(res, 50));
  // each as live listeners read it: null would be a message the channel's schema refuses
  const parsed = messages.map((m) => readGenerationMessage(m)!);
  expect(parsed.every((m) => m !== null)).toBe(true);
  expect(parsed.map(({ type, status }) => ({ type, status }))).toEqual([
    { type: 'generation.started', status: 'active' },
    { type: 'generation.progress', status: 'active' },
    { type: 'generation.failed', status: 'failed' },
  ]);
  // only the terminal event carries the record, as a read would return it
  expect(parsed.map((m) => m.record !== undefined)).toEqual([false, false, true]);
  expect(decodeRecord(hashOf(parsed[2]!.record!))).toEqual(await store.get(r.id));
});

it('starts a job in one step: active, lease claimed, record read; the job hears of it', async () => {
  const r = record();
  await store.create(r);
  const job = { hash: `${prefix}:job:${r.id}`, events: `${prefix}:job-events`, meta: `${prefix}:job-meta`, logs: `${prefix}:job:${r.id}:logs` };
  await redis.hset(job.hash, 'name', 'generate');
  const started = await store.start(r, 1, 'owner-a', 60_000, { job, line: 'stage=generating progress=10 attempt=1' });
  expect(started.outcome).toBe('ok');
  if (started.outcome !== 'ok') return;
  expect(started.record).toMatchObject({ status: 'active', stage: 'generating', attempts: 1 });
  expect(started.record.startedAt).toEqual(expect.any(String));
  expect(started.claim).toEqual({ outcome: 'ok' });
  // another runner finds the lease held
  const again = await store.start(r, 2, 'owner-b', 60_000);
  expect(again.outcome === 'ok' && again.claim.outcome).toBe('busy');
  // the job's progress follows the record's (which only rises), with BullMQ's progress event and a log line
  expect(await redis.hget(job.hash, 'progress')).toBe(String(started.record.progress));
  const events = (await redis.xrange(job.events, '-', '+')) as [string, string[]][];
  expect(events.map(([, fields]) => fields)[0]).toEqual(['event', 'progress', 'jobId', r.id, 'data', String(started.record.progress)]);
  expect(await redis.lrange(job.logs, 0, -1)).toEqual([expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z stage=generating progress=10 attempt=1$/)]);
  // a gone job is left alone
  await redis.del(job.hash);
  await store.setStage(r, 'processing', { job, line: 'stage=processing' });
  expect(await redis.exists(job.hash)).toBe(0);
  expect(await redis.llen(job.logs)).toBe(1);
  await store.cancel(r);
  expect(await store.start(r, 3, 'owner-a', 60_000)).toEqual({ outcome: 'terminal' });
  expect(await store.start({ id: newId('gen'), tenant: 't1' }, 1, 'owner-a', 60_000)).toEqual({ outcome: 'missing' });
});

it('keeps one status index per tenant in step with every transition', async () => {
  const tenant = `idx-${randomBytes(3).toString('hex')}`;
  const r = record(tenant);
  const members = async () => {
    const out: Record<string, string[]> = {};
    for (const status of ['queued', 'active', 'completed', 'failed', 'cancelled'] as const) {
      const ids = await redis.zrange(keys.tenantGenerations(tenant, status), '0', '-1');
      if (ids.length) out[status] = ids;
    }
    return out;
  };
  await store.create(r);
  expect(await members()).toEqual({ queued: [r.id] });
  await store.markActive(r, 1);
  expect(await members()).toEqual({ active: [r.id] });
  await store.retrying(r, { code: 'x', message: 'y', retryable: true });
  expect(await members()).toEqual({ queued: [r.id] });
  await store.markActive(r, 2);
  await store.fail(r, { code: 'x', message: 'y', retryable: false });
  expect(await members()).toEqual({ failed: [r.id] });
  expect(await redis.sismember(keys.tenants(), tenant)).toBe(1);
});

it('lists newest first with a cursor, filters by status, and skips expired entries', async () => {
  const tenant = `lister-${randomBytes(3).toString('hex')}`;
  const made: NewRecord[] = [];
  for (let i = 0; i < 7; i++) {
    const r = record(tenant);
    made.push(r);
    await store.create(r);
    await new Promise((res) => setTimeout(res, 2));
  }
  await store.cancel(made[1]!);
  await redis.del(keys.generation(made[3]!.id)); // as if it expired before the sweep came by
  const page1 = await store.list(tenant, { limit: 3 });
  const page2 = await store.list(tenant, { limit: 3, cursor: page1.nextCursor! });
  const ids = [...page1.records, ...page2.records].map((r) => r.id);
  expect(ids).toEqual(made.filter((_, i) => i !== 3).map((r) => r.id).reverse());
  expect(page2.nextCursor).toBeNull();
  const cancelled = await store.list(tenant, { limit: 10, status: 'cancelled' });
  expect(cancelled.records.map((r) => r.id)).toEqual([made[1]!.id]);
  const queued = await store.list(tenant, { limit: 2, status: 'queued' });
  expect(queued.records.map((r) => r.id)).toEqual([made[6]!.id, made[5]!.id]);
  expect(queued.nextCursor).toBe(made[5]!.id);
});

it('a provisional record expires unless touched by a worker', async () => {
  const b = record();
  const c = record();
  for (const r of [b, c]) await store.create(r, { provisionalSeconds: 600 });
  for (const r of [b, c]) expect(await redis.ttl(keys.generation(r.id))).toBeGreaterThan(500);
  await store.markActive(b, 1);
  expect(await redis.ttl(keys.generation(b.id))).toBe(-1);
  expect(await redis.ttl(keys.generation(c.id))).toBeGreaterThan(500);
});

it('an idempotency key is claimed with its record in one step: the second create gets what the first holds', async () => {
  const claim = (value: string): IdempotencyClaim => ({ key: keys.idempotency('t1', randomKey), value, ttlSeconds: 600 });
  const randomKey = randomBytes(8).toString('hex');
  const a = record();
  const b = record();
  const results = await Promise.all([store.create(a, { provisionalSeconds: 600, idempotency: claim(`h|${a.id}`) }), store.create(b, { provisionalSeconds: 600, idempotency: claim(`h|${b.id}`) })]);
  const created = results.filter((x) => x.outcome === 'created');
  const held = results.filter((x) => x.outcome === 'held');
  expect(created).toHaveLength(1);
  expect(held).toEqual([{ outcome: 'held', value: `h|${(created[0] as { record: NewRecord }).record.id}` }]);
  const loser = created[0]!.outcome === 'created' && (created[0] as { record: NewRecord }).record.id === a.id ? b : a;
  expect(await redis.exists(keys.generation(loser.id))).toBe(0);
  const winner = loser === a ? b : a;
  // while provisional, discarding frees the key and removes the record
  expect(await store.discard(winner, claim(`h|${winner.id}`))).toBe(true);
  expect(await redis.exists(keys.idempotency('t1', randomKey), keys.generation(winner.id))).toBe(0);
  // a record that is not provisional can no longer be discarded
  const kept = record();
  await store.create(kept, { idempotency: claim(`h|${kept.id}`) });
  expect(await store.discard(kept, claim(`h|${kept.id}`))).toBe(false);
  expect(await redis.exists(keys.idempotency('t1', randomKey), keys.generation(kept.id))).toBe(2);
});

it('the upstream lease runs on Redis time, lasts until the original is stored, and is refused to a second owner while live', async () => {
  const r = record();
  await store.create(r);
  expect(await store.claimUpstream(r, 'one', 5000)).toEqual({ outcome: 'ok' });
  const busy = await store.claimUpstream(r, 'two', 5000);
  expect(busy.outcome).toBe('busy');
  expect((busy as { retryInMs: number }).retryInMs).toBeGreaterThan(4000);
  expect((busy as { retryInMs: number }).retryInMs).toBeLessThanOrEqual(5000);
  await store.releaseUpstream(r);
  expect(await store.claimUpstream(r, 'two', 5000)).toEqual({ outcome: 'ok' });
  // a paid-for URL does not end the lease: its download is the holder's too
  await store.checkpoint(r, { upstreamUrl: 'http://upstream/x.png' });
  expect((await store.claimUpstream(r, 'three', 5000)).outcome).toBe('busy');
  expect(await store.claimUpstream(r, 'two', 5000)).toEqual({ outcome: 'ok', upstreamUrl: 'http://upstream/x.png' });
  // the stored original ends it, and nobody needs it any more
  await store.checkpoint(r, { original: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, upstreamUrl: null });
  expect(await store.claimUpstream(r, 'three', 5000)).toEqual({ outcome: 'checkpointed' });
});

it('the retention sweep removes due records with their index entries, spooled bytes and delivery logs, and forgets empty tenants', async () => {
  const tenant = `swept-${randomBytes(3).toString('hex')}`;
  const r = record(tenant);
  const kept = record(tenant);
  await store.create(r);
  await store.create(kept);
  await store.fail(r, { code: 'x', message: 'y', retryable: false });
  await redis.set(keys.spool(r.id), 'stray');
  await redis.hset(keys.generationDeliveries(r.id), 'seq', '1');
  const now = await retention.now();
  expect(await retention.removeDueRecords(now, 100, 3600)).toEqual({ seen: 0, removed: 0 });
  expect((await retention.removeDueRecords(now + 3601_000, 1000, 3600)).removed).toBeGreaterThanOrEqual(1);
  // with its delivery log
  expect(await redis.exists(keys.generation(r.id), keys.spool(r.id), keys.generationDeliveries(r.id))).toBe(0);
  expect(await redis.zscore(keys.tenantGenerations(tenant), r.id)).toBeNull();
  expect(await redis.zscore(keys.tenantGenerations(tenant, 'failed'), r.id)).toBeNull();
  expect(await redis.zscore(keys.recordExpiry(), `${r.id}|${tenant}`)).toBeNull();
  expect(await redis.sismember(keys.tenants(), tenant)).toBe(1);
  await store.cancel(kept);
  await retention.removeDueRecords(now + 3601_000, 1000, 3600);
  expect(await redis.sismember(keys.tenants(), tenant)).toBe(0);
});

it('finds unfinished records whose job is gone, but not provisional ones or those with a job', async () => {
  const tenant = `orphans-${randomBytes(3).toString('hex')}`;
  const withJob = record(tenant);
  const orphan = record(tenant);
  const provisional = record(tenant);
  const finished = record(tenant);
  await store.create(withJob);
  await store.create(orphan);
  await store.create(provisional, { provisionalSeconds: 600 });
  await store.create(finished);
  await store.markActive(orphan, 1);
  await store.complete(finished, { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] });
  const jobKey = (id: string) => `${prefix}:fakequeue:${id}`;
  await redis.set(jobKey(withJob.id), 'job');
  const found = await retention.findOrphans('gen_zzzzzzzzz', jobKey, { page: 2 });
  expect(found.filter((f) => f.ref.tenant === tenant)).toEqual([{ kind: 'lost', ref: { id: orphan.id, tenant } }]);
  // created after the bound: too young to judge
  expect((await retention.findOrphans('gen_000000000', jobKey)).filter((f) => f.ref.tenant === tenant)).toEqual([]);
});

it('reads a bounded part of a large backlog per sweep, going on where the last one stopped', async () => {
  const tenant = `orphan-budget-${randomBytes(3).toString('hex')}`;
  // 7 queued generations with jobs, then (in index order) an orphan
  const all = Array.from({ length: 8 }, () => record(tenant)).sort((a, b) => (a.id < b.id ? -1 : 1));
  const withJobs = all.slice(0, 7);
  const orphan = all[7] as NewRecord;
  for (const r of all) await store.create(r);
  const jobKey = (id: string) => `${prefix}:fakequeue:${id}`;
  for (const r of withJobs) await redis.set(jobKey(r.id), 'job');
  const ours = (found: { ref: { id: string; tenant: string } }[]) => found.filter((f) => f.ref.tenant === tenant).map((f) => f.ref);
  const cursor = () => redis.hget(keys.orphanSweepCursor(), `${tenant}|queued`);
  // each sweep reads 3 entries of the index: the orphan is the 8th
  expect(ours(await retention.findOrphans('gen_zzzzzzzzz', jobKey, { page: 2, budget: 3 }))).toEqual([]);
  expect(await cursor()).toBe(withJobs[2]?.id);
  expect(await redis.pttl(keys.orphanSweepCursor())).toBeGreaterThan(0);
  expect(ours(await retention.findOrphans('gen_zzzzzzzzz', jobKey, { page: 2, budget: 3 }))).toEqual([]);
  expect(await cursor()).toBe(withJobs[5]?.id);
  expect(ours(await retention.findOrphans('gen_zzzzzzzzz', jobKey, { page: 2, budget: 3 }))).toEqual([{ id: orphan.id, tenant }]);
  // read to its end: the next sweep starts over
  expect(await cursor()).toBeNull();
  expect(ours(await retention.findOrphans('gen_zzzzzzzzz', jobKey, { page: 2, budget: 3 }))).toEqual([]);
  expect(await cursor()).toBe(withJobs[2]?.id);
});

describe('createWithJob', () => {
  const policy = { maxAttempts: 3, backoffMs: 1000, retentionSeconds: 3600 };
  let queue: Queue;
  let plain: Queue;

  const jobOf = (r: NewRecord, opts = generateJobOptions(r.id, r.priority, policy)) => ({
    name: generateJobName(r.request.topic),
    data: { generationId: r.id, tenant: r.tenant },
    opts,
  });

  const createdRecord = (o: CreateOutcome): GenerationRecord => {
    if (o.outcome !== 'created') throw new Error(`expected a created record, got ${o.outcome}`);
    return o.record;
  };

  /** A job's hash without what differs between any two adds (its time). */
  async function jobHash(q: Queue, id: string): Promise<Record<string, string>> {
    const { timestamp: _t, ...rest } = await redis.hgetall(`${q.opts.prefix}:${q.name}:${id}`);
    return rest;
  }

  beforeAll(async () => {
    queue = new Queue('generate', { connection: redis, prefix });
    plain = new Queue('generate', { connection: redis, prefix: `${prefix}:plain` });
    await Promise.all([queue.waitUntilReady(), plain.waitUntilReady()]);
  });
  afterAll(async () => {
    await Promise.all([queue.close(), plain.close()]);
  });

  describe.each([
    ['prioritized', (r: NewRecord) => jobOf(r)],
    ['standard (no priority)', (r: NewRecord) => jobOf(r, { ...generateJobOptions(r.id, r.priority, policy), priority: 0 })],
  ])('createWithJob, %s job', (_kind, job) => {
    it('writes the record and the very job queue.add writes, in one step', async () => {
      const r = record();
      const spec = job(r);
      const created = createdRecord(await store.createWithJob(r, queue, spec));
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

  it('the same create sent again (its reply lost to a reconnect, ioredis sends it again) answers as the first and writes nothing again', async () => {
    const r = record();
    const first = createdRecord(await store.createWithJob(r, queue, jobOf(r)));
    // the worker finishes it before the call comes again
    await store.markActive(r, 1);
    await store.complete(r, { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] });
    const again = createdRecord(await store.createWithJob(r, queue, jobOf(r)));
    expect(again.createdAt).toBe(first.createdAt);
    // before: written again, the finished generation was back to queued, in both indexes
    expect(await store.get(r.id)).toMatchObject({ status: 'completed', createdAt: first.createdAt });
    expect(await redis.zscore(keys.tenantGenerations('t1', 'queued'), r.id)).toBeNull();
    // and the record-only create likewise
    expect(await store.create(r)).toMatchObject({ outcome: 'created', record: { createdAt: first.createdAt } });
    expect((await store.get(r.id))?.status).toBe('completed');
  });

  it("ends the request's quota reservation in the same step", async () => {
    const reservations = keys.queuedReservations('t1');
    await redis.zadd(reservations, Date.now() + 60_000, 'req-1|1', Date.now() + 60_000, 'other|3');
    const r = record('t1', { priority: 'high' });
    await store.createWithJob(r, queue, jobOf(r), { reservation: { key: reservations, entry: 'req-1|1' } });
    expect(await redis.zrange(reservations, '0', '-1')).toEqual(['other|3']);
  });

  it('an idempotency key is claimed in the same step: of many racing creates one writes its record and job, the others nothing', async () => {
    const idemKey = keys.idempotency('t1', randomBytes(8).toString('hex'));
    const reservations = keys.queuedReservations(`racing-${randomBytes(3).toString('hex')}`);
    const rs = Array.from({ length: 20 }, () => record());
    await redis.zadd(reservations, ...rs.flatMap((r) => [Date.now() + 60_000, `${r.id}|1`]));
    const outcomes = await Promise.all(
      rs.map((r) => store.createWithJob(r, queue, jobOf(r), { idempotency: { key: idemKey, value: `h|${r.id}`, ttlSeconds: 86400 }, reservation: { key: reservations, entry: `${r.id}|1` } })),
    );
    const created = outcomes.flatMap((o) => (o.outcome === 'created' ? [o.record] : []));
    expect(created).toHaveLength(1);
    const winner = created[0]!;
    expect(outcomes.filter((o) => o.outcome === 'held')).toEqual(Array.from({ length: 19 }, () => ({ outcome: 'held', value: `h|${winner.id}` })));
    expect(await redis.get(idemKey)).toBe(`h|${winner.id}`);
    expect(await redis.ttl(idemKey)).toBeGreaterThan(86000);
    for (const r of rs) {
      const won = r.id === winner.id;
      expect([r.id, await redis.exists(keys.generation(r.id)), Boolean(await queue.getJob(r.id))]).toEqual([r.id, won ? 1 : 0, won]);
    }
    // every request's reservation ended, the held ones' too
    expect(await redis.zcard(reservations)).toBe(0);
  });

  it('many at once: each record has exactly its job, whatever the interleaving', async () => {
    const rs = Array.from({ length: 200 }, (_, i) => record('t1', { priority: i % 3 === 0 ? 'low' : 'normal' }));
    await Promise.all(rs.map((r) => store.createWithJob(r, queue, jobOf(r))));
    const ids = rs.map((r) => r.id);
    const jobs = await Promise.all(ids.map((id) => queue.getJob(id)));
    expect(jobs.map((j) => j?.data.generationId)).toEqual(ids);
    expect((await Promise.all(ids.map((id) => store.get(id)))).every((x) => x?.status === 'queued')).toBe(true);
  });

  it('creates made in one tick share a script call (up to 8 each), and each gets its own answer', async () => {
    // a store on its own connection, whose commands MONITOR picks out by client address
    const conn = new Redis(url);
    // (not redis.monitor(): other clients' commands that come with MONITOR's own reply, or after it
    // is closed, answer no command here, and ioredis reports each as an error it leaves unhandled)
    const monitor = redis.duplicate({ monitor: true, lazyConnect: true });
    monitor.on('error', () => undefined);
    const monitoring = new Promise((resolve) => monitor.once('monitoring', resolve));
    await monitor.connect();
    await monitoring;
    try {
      const own = new GenerationStore(conn, keys, 3600);
      const addr = /addr=(\S+)/.exec(String(await conn.client('INFO')))?.[1];
      const sent: number[] = [];
      // the number of keys of each call: each item brings BullMQ's keys for its kind of add and the create's 6
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        if (source === addr && /^eval/i.test(args[0] ?? '')) sent.push(Number(args[2]));
      });
      const idemKey = keys.idempotency('t1', randomBytes(8).toString('hex'));
      const claim = (r: NewRecord): { idempotency: IdempotencyClaim } => ({ idempotency: { key: idemKey, value: `h|${r.id}`, ttlSeconds: 60 } });
      // 9 prioritized (two of them racing for one idempotency key) and 1 standard, all in this tick
      const rs = Array.from({ length: 10 }, () => record());
      const outcomes = await Promise.all(
        rs.map((r, i) => own.createWithJob(r, queue, i === 9 ? jobOf(r, { ...generateJobOptions(r.id, r.priority, policy), priority: 0 }) : jobOf(r), i === 3 || i === 6 ? claim(r) : {})),
      );
      expect(outcomes.map((o) => o.outcome)).toEqual(['created', 'created', 'created', 'created', 'created', 'created', 'held', 'created', 'created', 'created']);
      expect(outcomes[6]).toEqual({ outcome: 'held', value: `h|${rs[3]!.id}` });
      expect(await redis.get(idemKey)).toBe(`h|${rs[3]!.id}`);
      for (const [i, r] of rs.entries()) {
        expect([i, await redis.exists(keys.generation(r.id)), await queue.getJobState(r.id)]).toEqual([i, i === 6 ? 0 : 1, i === 6 ? 'unknown' : i === 9 ? 'waiting' : 'prioritized']);
      }
      // the prioritized adds in two calls (8 + 1), the standard one in its own
      // MONITOR's lines come on their own connection: wait for them, then a little longer for any extra
      for (let t = 0; t < 40 && sent.length < 3; t++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 100));
      const keysOf = (j: ReturnType<typeof jobOf>) => {
        const add = captureJobAdd(new Job(plain, j.name, j.data, j.opts, j.opts.jobId));
        add.settle(-1);
        return add.args.length - BULLMQ_ADD_ARGS + 6;
      };
      const [prioritized, standard] = [keysOf(jobOf(record())), keysOf(jobOf(rs[9]!, { ...generateJobOptions(rs[9]!.id, 'normal', policy), priority: 0 }))];
      expect([...sent].sort((a, b) => a - b)).toEqual([prioritized, standard, 8 * prioritized].sort((a, b) => a - b));
    } finally {
      await monitor.disconnect();
      await conn.quit();
    }
  });

  it('an error in one create of a shared call fails that create only: the others are written and answered', async () => {
    // a tenant whose index key holds a string: its create fails in Redis (WRONGTYPE) after its job was added
    const bad = `wrongtype-${randomBytes(3).toString('hex')}`;
    await redis.set(keys.tenantGenerations(bad), 'not a sorted set');
    const rs = [record('t1'), record(bad), record('t1')];
    const outcomes = await Promise.allSettled(rs.map((r) => store.createWithJob(r, queue, jobOf(r))));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
    for (const i of [0, 2]) {
      expect((outcomes[i] as PromiseFulfilledResult<CreateOutcome>).value).toMatchObject({ outcome: 'created', record: { id: rs[i]!.id } });
      expect(await store.get(rs[i]!.id)).toMatchObject({ id: rs[i]!.id, status: 'queued' });
      expect(await queue.getJobState(rs[i]!.id)).toBe('prioritized');
    }
  });

  it("when BullMQ's add refuses (a negative code), no record is written", async () => {
    // BullMQ answers a refused add with a negative code; a stand-in add that refuses shows what follows
    const refusing = withJobAdds('return -5', 1, { lua: CREATE_LUA, keys: 6, args: 7 });
    const r = record();
    const recordKey = keys.generation(r.id);
    const reply = await redis.eval(refusing, 7, `${prefix}:x`, recordKey, keys.tenantGenerations('t1'), keys.tenantGenerations('t1', 'queued'), keys.tenants(), recordKey, recordKey, 'a', 'b', 'c', r.id, 't1', '0', '', '0', '', packFields(['status', 'queued']));
    expect(reply).toEqual([['refused', -5]]);
    expect(await redis.exists(recordKey)).toBe(0);
    expect(await redis.zscore(keys.tenantGenerations('t1', 'queued'), r.id)).toBeNull();
  });

  it('record fields of any characters survive the packed create (JSON escapes, quotes, control characters, empty values)', async () => {
    const awkward = [':', '12:ab', '"quoted" \\ back\\slash \\u0041', '[1,"x"]', 'line\r\nnext\ttab \u001b[31m \u2028', 'naïve café', '日本語のトピック', '🦊 fox 🦊', 'a\u0000b', 'lone \ud800 surrogate', 'x'.repeat(3000)];
    for (const topic of awkward) {
      // request and metadata are JSON in the hash; notify is a plain string
      const r = { ...record(), request: { topic, style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: { note: ['', ...awkward] }, notify: `chan:${topic}` };
      const created = createdRecord(await store.createWithJob(r, queue, jobOf(r)));
      const read = await store.get(r.id);
      expect({ ...read, notify: '' }).toEqual({ ...created, notify: '' });
      expect(read?.request.topic).toBe(topic);
      expect(read?.metadata).toEqual({ note: ['', ...awkward] });
      // a plain string arrives as the UTF-8 the client sends (a lone surrogate as U+FFFD, as with any argument)
      expect(read?.notify).toBe(Buffer.from(`chan:${topic}`).toString());
    }
  });
});

it('a page looks at a bounded number of index entries: past a long stretch whose records are gone it answers short, with a cursor to go on', async () => {
  const tenant = `stale-${randomBytes(3).toString('hex')}`;
  const kept: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = record(tenant);
    await store.create(r);
    kept.push(r.id);
  }
  // newer entries whose records expired before the retention sweep came by
  const stale = Array.from({ length: 2500 }, (_, i) => `gen_zz${String(i).padStart(6, '0')}`);
  await redis.zadd(keys.tenantGenerations(tenant), ...stale.flatMap((id) => [0, id]));
  const seen: string[] = [];
  let calls = 0;
  let cursor: string | undefined;
  do {
    const page = await store.list(tenant, { limit: 2, ...(cursor ? { cursor } : {}) });
    calls++;
    seen.push(...page.records.map((r) => r.id));
    cursor = page.nextCursor ?? undefined;
  } while (cursor && calls < 20);
  // 2,500 stale entries at 1,000 a page, then the three records two by two
  expect(calls).toBe(4);
  expect(seen).toEqual([...kept].sort().reverse());
  const first = await store.list(tenant, { limit: 2 });
  expect(first.records).toEqual([]);
  expect(first.nextCursor).toBe(stale[stale.length - 1000]);
});
