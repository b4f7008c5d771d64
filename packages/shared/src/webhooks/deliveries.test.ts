import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { keysFor } from '../keys';
import { attemptsInRun, type Delivery } from '../schemas/delivery';
import { OVERTAKEN_ATTEMPT_ERROR, UNFINISHED_ATTEMPT_ERROR } from '../records/lua/webhooks';
import { DeliveryLog } from './deliveries';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const redisTime = async () => {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
};

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-deliveries-${randomBytes(4).toString('hex')}`;
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

const delivery = (id: string, subject: string, tenant = 't1'): Delivery => ({
  id,
  event: 'generation.completed',
  webhookId: `msg_${id.slice(4)}`,
  url: 'https://hooks.example/x?token=abc',
  tenant,
  subject,
  createdAt: Date.now(),
  state: 'pending',
  run: 0,
  attempts: 0,
});

it('freezes the body once: creating the same delivery again changes nothing', async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  await log.createMany([{ delivery: delivery('dlv_a1', 'gen_1'), body: '{"v":1}' }]);
  await log.createMany([{ delivery: { ...delivery('dlv_a1', 'gen_1'), url: 'https://other.example' }, body: '{"v":2}' }]);
  const loaded = await log.load('gen_1', 'dlv_a1');
  expect(loaded?.body).toBe('{"v":1}');
  expect(loaded?.delivery.url).toBe('https://hooks.example/x?token=abc');
  const ttl = await redis.ttl(keys.generationDeliveries('gen_1'));
  expect(ttl).toBeGreaterThan(3500);
  expect(ttl).toBeLessThanOrEqual(3600);
});

it('a log lives as long as its subject: without an expiry while the record or batch has none (the sweep removes it with its owner), the retention once it has one', async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  const ttlOf = (subject: string) => redis.ttl(log.keyOf(subject));
  // a generation under way, or an item its running batch holds: its record has no expiry
  await redis.hset(keys.generation('gen_held'), 'id', 'gen_held');
  await redis.hset(keys.batch('batch_run'), 'id', 'batch_run');
  await log.createMany([
    { delivery: delivery('dlv_h1', 'gen_held'), body: '{}' },
    { delivery: delivery('dlv_h2', 'batch_run'), body: '{}' },
    { delivery: delivery('dlv_h3', 'gen_nothing'), body: '{}' },
  ]);
  expect([await ttlOf('gen_held'), await ttlOf('batch_run')]).toEqual([-1, -1]);
  // no owner at all (gone, or never there): the log expires by itself
  expect(await ttlOf('gen_nothing')).toBeGreaterThan(3500);
  expect(await log.recordAttempt({ tenant: 't1', subject: 'gen_held', id: 'dlv_h1' }, { run: 0, state: 'pending', status: 500, durationMs: 3, retryInMs: 1000 })).toBe('ok');
  expect(await log.redeliver('batch_run', 'dlv_h2')).toBe(1);
  expect([await ttlOf('gen_held'), await ttlOf('batch_run')]).toEqual([-1, -1]);
  // the record ended (it has the retention now): the next write gives the log the retention too
  await redis.expire(keys.generation('gen_held'), 3600);
  expect(await log.recordAttempt({ tenant: 't1', subject: 'gen_held', id: 'dlv_h1' }, { run: 0, state: 'delivered', status: 200, durationMs: 3 })).toBe('ok');
  expect(await ttlOf('gen_held')).toBeGreaterThan(3500);
  await redis.expire(keys.batch('batch_run'), 3600);
  expect(await log.redeliver('batch_run', 'dlv_h2')).toBe(2);
  expect(await ttlOf('batch_run')).toBeGreaterThan(3500);
});

it('lists attempts in order with their outcome, never the URL; only the tenant sees them', async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  await log.createMany([{ delivery: delivery('dlv_b1', 'gen_2'), body: '{}' }]);
  expect(await log.list('gen_2', 't1')).toEqual([expect.objectContaining({ id: 'dlv_b1', attempt: 0, state: 'pending' })]);
  expect(await log.recordAttempt({ tenant: 't1', subject: 'gen_2', id: 'dlv_b1' }, { run: 0, state: 'pending', status: 503, error: 'answered 503', durationMs: 12, retryInMs: 5000 })).toBe('ok');
  // waiting for its retry, the attempt is pending; once the retry is made it is a failed attempt
  expect((await log.list('gen_2', 't1')).map((r) => [r.attempt, r.state])).toEqual([[1, 'pending']]);
  expect(await log.recordAttempt({ tenant: 't1', subject: 'gen_2', id: 'dlv_b1' }, { run: 0, state: 'delivered', status: 200, durationMs: 8 })).toBe('ok');
  const rows = await log.list('gen_2', 't1');
  expect(rows).toEqual([
    { id: 'dlv_b1', event: 'generation.completed', webhookId: 'msg_b1', attempt: 1, at: expect.any(String), status: 503, error: 'answered 503', durationMs: 12, nextAttemptAt: expect.any(String), state: 'failed' },
    { id: 'dlv_b1', event: 'generation.completed', webhookId: 'msg_b1', attempt: 2, at: expect.any(String), status: 200, durationMs: 8, state: 'delivered' },
  ]);
  expect(Date.parse(rows[0]!.nextAttemptAt!) - Date.parse(rows[0]!.at)).toBeGreaterThanOrEqual(5000);
  expect(JSON.stringify(rows)).not.toMatch(/token/);
  expect(await log.list('gen_2', 'someone-else')).toEqual([]);
});

it('a redelivery starts a new run, counting its attempts afresh; the old run can no longer record', async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  await log.createMany([{ delivery: delivery('dlv_c1', 'gen_3'), body: '{}' }]);
  await log.recordAttempt({ tenant: 't1', subject: 'gen_3', id: 'dlv_c1' }, { run: 0, state: 'pending', status: 500, durationMs: 1, retryInMs: 10 });
  await log.recordAttempt({ tenant: 't1', subject: 'gen_3', id: 'dlv_c1' }, { run: 0, state: 'exhausted', status: 500, durationMs: 1 });
  expect((await log.load('gen_3', 'dlv_c1'))?.delivery).toMatchObject({ run: 0, attempts: 2, runAttempts: 2, runAttemptsOf: 0 });
  // ended: a late answer of the same run is not recorded over it
  expect(await log.recordAttempt({ tenant: 't1', subject: 'gen_3', id: 'dlv_c1' }, { run: 0, state: 'delivered', status: 200, durationMs: 1 })).toBe('stale');
  const before = await redisTime();
  expect(await log.redeliver('gen_3', 'dlv_c1')).toBe(1);
  expect((await log.load('gen_3', 'dlv_c1'))?.delivery).toMatchObject({ run: 1, state: 'pending', attempts: 2, runAttempts: 0 });
  // waiting for its first attempt, the new run shows as pending, from when it was asked for (before: the last row said exhausted)
  const waiting = (await log.list('gen_3', 't1')).at(-1)!;
  expect([waiting.attempt, waiting.state]).toEqual([0, 'pending']);
  expect(Date.parse(waiting.at)).toBeGreaterThanOrEqual(before);
  expect(await log.recordAttempt({ tenant: 't1', subject: 'gen_3', id: 'dlv_c1' }, { run: 0, state: 'delivered', status: 200, durationMs: 1 })).toBe('stale');
  expect(await log.recordAttempt({ tenant: 't1', subject: 'gen_3', id: 'dlv_c1' }, { run: 1, state: 'delivered', status: 200, durationMs: 1 })).toBe('ok');
  expect((await log.load('gen_3', 'dlv_c1'))?.delivery).toMatchObject({ attempts: 3, runAttempts: 1, runAttemptsOf: 1 });
  expect((await log.list('gen_3', 't1')).map((r) => [r.attempt, r.state])).toEqual([
    [1, 'failed'],
    [2, 'exhausted'],
    [3, 'delivered'],
  ]);
  expect(await log.redeliver('gen_3', 'dlv_nosuch')).toBeNull();
});

it('counts the attempts of a run afresh when the count it holds is of another run (as a redelivery by an older release leaves it)', async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  await log.createMany([{ delivery: { ...delivery('dlv_c2', 'gen_3b'), run: 1, attempts: 9, runAttempts: 9, runAttemptsOf: 0 }, body: '{}' }]);
  expect(attemptsInRun((await log.load('gen_3b', 'dlv_c2'))!.delivery)).toBe(0);
  await log.recordAttempt({ tenant: 't1', subject: 'gen_3b', id: 'dlv_c2' }, { run: 1, state: 'pending', status: 500, durationMs: 1, retryInMs: 10 });
  const d = (await log.load('gen_3b', 'dlv_c2'))!.delivery;
  expect(d).toMatchObject({ attempts: 10, runAttempts: 1, runAttemptsOf: 1 });
  expect(attemptsInRun(d)).toBe(1);
});

describe('an attempt cut short on our side', () => {
  const ref = (id: string, subject: string) => ({ tenant: 't1', subject, id, run: 0 });
  const marker = (subject: string, id: string) => redis.hget(keys.generationDeliveries(subject), `s:${id}`);

  it('is marked started until recorded: an attempt recorded leaves no mark and no extra row', async () => {
    const log = new DeliveryLog(redis, keys, 3600);
    await log.createMany([{ delivery: delivery('dlv_m1', 'gen_m1'), body: '{}' }]);
    expect(await log.markStarted(ref('dlv_m1', 'gen_m1'), 'job-a')).toBe('ok');
    expect(await marker('gen_m1', 'dlv_m1')).toMatch(/^0\|\d+\|job-a$/);
    await log.recordAttempt(ref('dlv_m1', 'gen_m1'), { run: 0, state: 'pending', status: 500, durationMs: 3, retryInMs: 10 });
    expect(await marker('gen_m1', 'dlv_m1')).toBeNull();
    await log.markStarted(ref('dlv_m1', 'gen_m1'), 'job-b');
    await log.recordAttempt(ref('dlv_m1', 'gen_m1'), { run: 0, state: 'delivered', status: 200, durationMs: 3 });
    expect((await log.list('gen_m1', 't1')).map((r) => [r.attempt, r.state, r.status])).toEqual([
      [1, 'failed', 500],
      [2, 'delivered', 200],
    ]);
  });

  it('is logged when the next attempt starts, from when it started, without using a step of the schedule', async () => {
    const log = new DeliveryLog(redis, keys, 3600);
    await log.createMany([{ delivery: delivery('dlv_m2', 'gen_m2'), body: '{}' }]);
    await log.markStarted(ref('dlv_m2', 'gen_m2'), 'dead-worker');
    const startedAt = Number((await marker('gen_m2', 'dlv_m2'))!.split('|')[1]);
    await sleep(30);
    // the next attempt starts: the one under way before it never recorded an outcome
    await log.markStarted(ref('dlv_m2', 'gen_m2'), 'next-worker');
    const d = (await log.load('gen_m2', 'dlv_m2'))!.delivery;
    expect(d).toMatchObject({ state: 'pending', attempts: 1 });
    expect(attemptsInRun(d)).toBe(0);
    expect(await log.list('gen_m2', 't1')).toEqual([
      { id: 'dlv_m2', event: 'generation.completed', webhookId: 'msg_m2', attempt: 1, at: new Date(startedAt).toISOString(), durationMs: 0, error: UNFINISHED_ATTEMPT_ERROR, state: 'pending' },
    ]);
    await log.recordAttempt(ref('dlv_m2', 'gen_m2'), { run: 0, state: 'delivered', status: 200, durationMs: 3 });
    expect((await log.list('gen_m2', 't1')).map((r) => [r.attempt, r.state, r.error ?? r.status])).toEqual([
      [1, 'failed', UNFINISHED_ATTEMPT_ERROR],
      [2, 'delivered', 200],
    ]);
    expect(attemptsInRun((await log.load('gen_m2', 'dlv_m2'))!.delivery)).toBe(1);
  });

  it('is not logged into a delivery that has ended; one of an earlier run is logged, as overtaken, when the new run starts; a delivery gone gets no mark', async () => {
    const log = new DeliveryLog(redis, keys, 3600);
    await log.createMany([{ delivery: delivery('dlv_m3', 'gen_m3'), body: '{}' }]);
    await log.recordAttempt(ref('dlv_m3', 'gen_m3'), { run: 0, state: 'exhausted', status: 500, durationMs: 1 });
    // an attempt of run 0 left under way (its worker gave up on it and ended the delivery meanwhile), then a redelivery
    await redis.hset(keys.generationDeliveries('gen_m3'), 's:dlv_m3', `0|${Date.now()}|old-run`);
    expect(await log.redeliver('gen_m3', 'dlv_m3')).toBe(1);
    await log.markStarted({ ...ref('dlv_m3', 'gen_m3'), run: 1 }, 'run-1');
    // before: the run 0 attempt, which may have reached the endpoint, was never logged
    expect((await log.list('gen_m3', 't1')).map((r) => [r.attempt, r.state, r.error])).toEqual([
      [1, 'exhausted', undefined],
      [2, 'failed', OVERTAKEN_ATTEMPT_ERROR],
      [0, 'pending', undefined],
    ]);
    await log.recordAttempt(ref('dlv_m3', 'gen_m3'), { run: 1, state: 'delivered', status: 200, durationMs: 1 });
    await redis.hset(keys.generationDeliveries('gen_m3'), 's:dlv_m3', `1|${Date.now()}|late`);
    expect(await log.markStarted({ ...ref('dlv_m3', 'gen_m3'), run: 1 }, 'after-the-end')).toBe('stale');
    expect((await log.list('gen_m3', 't1')).map((r) => [r.attempt, r.state])).toEqual([
      [1, 'exhausted'],
      [2, 'failed'],
      [3, 'delivered'],
    ]);
    expect(await log.markStarted(ref('dlv_gone', 'gen_gone'), 'nobody')).toBe('missing');
    expect(await redis.exists(keys.generationDeliveries('gen_gone'))).toBe(0);
  });

  it('an attempt of a run the delivery has left marks nothing and leaves the mark of the run under way', async () => {
    const log = new DeliveryLog(redis, keys, 3600);
    await log.createMany([{ delivery: delivery('dlv_m4', 'gen_m4'), body: '{}' }]);
    // redelivered while a run 0 attempt still waited to start; run 1 starts first
    expect(await log.redeliver('gen_m4', 'dlv_m4')).toBe(1);
    expect(await log.markStarted({ ...ref('dlv_m4', 'gen_m4'), run: 1 }, 'run-1')).toBe('ok');
    const mark = await marker('gen_m4', 'dlv_m4');
    // before: the run 0 attempt logged run 1's, under way, as cut short, and took its mark
    expect(await log.markStarted(ref('dlv_m4', 'gen_m4'), 'run-0')).toBe('stale');
    expect(await marker('gen_m4', 'dlv_m4')).toBe(mark);
    expect(await log.list('gen_m4', 't1')).toEqual([expect.objectContaining({ attempt: 0, state: 'pending' })]);
  });

  it('is not taken for its own mark: the same attempt marked again (its call made twice) logs nothing', async () => {
    const log = new DeliveryLog(redis, keys, 3600);
    await log.createMany([{ delivery: delivery('dlv_m6', 'gen_m6'), body: '{}' }]);
    await log.markStarted(ref('dlv_m6', 'gen_m6'), 'job-a');
    expect(await log.markStarted(ref('dlv_m6', 'gen_m6'), 'job-a')).toBe('ok');
    expect(await log.list('gen_m6', 't1')).toEqual([expect.objectContaining({ attempt: 0 })]);
    expect((await log.load('gen_m6', 'dlv_m6'))!.delivery.attempts).toBe(0);
  });

  it('starts the run count of a delivery that had none with a cut-short row, which it does not count', async () => {
    const log = new DeliveryLog(redis, keys, 3600);
    await log.createMany([{ delivery: delivery('dlv_m7', 'gen_m7'), body: '{}' }]);
    await log.markStarted(ref('dlv_m7', 'gen_m7'), 'dead');
    await log.markStarted(ref('dlv_m7', 'gen_m7'), 'next');
    expect((await log.load('gen_m7', 'dlv_m7'))!.delivery).toMatchObject({ attempts: 1, runAttempts: 0, runAttemptsOf: 0 });
  });

  it('a mark is taken back only by the attempt it is of', async () => {
    const log = new DeliveryLog(redis, keys, 3600);
    await log.createMany([{ delivery: delivery('dlv_m5', 'gen_m5'), body: '{}' }]);
    await log.markStarted(ref('dlv_m5', 'gen_m5'), 'job-b');
    await log.clearMark(ref('dlv_m5', 'gen_m5'), 'job-a');
    expect(await marker('gen_m5', 'dlv_m5')).toMatch(/\|job-b$/);
    await log.clearMark(ref('dlv_m5', 'gen_m5'), 'job-b');
    expect(await marker('gen_m5', 'dlv_m5')).toBeNull();
  });
});

it('keeps only the newest attempts past the cap', async () => {
  const log = new DeliveryLog(redis, keys, 3600, 5);
  await log.createMany([{ delivery: delivery('dlv_d1', 'gen_4'), body: '{}' }]);
  for (let i = 0; i < 8; i++) await log.recordAttempt({ tenant: 't1', subject: 'gen_4', id: 'dlv_d1' }, { run: 0, state: 'pending', status: 500, durationMs: i, retryInMs: 0 });
  const rows = await log.list('gen_4', 't1');
  expect(rows.map((r) => r.attempt)).toEqual([4, 5, 6, 7, 8]);
  expect(rows.map((r) => r.state)).toEqual(['failed', 'failed', 'failed', 'failed', 'pending']);
  expect(await redis.hlen(keys.generationDeliveries('gen_4'))).toBe(5 + 3);
});

it('past the cap, keeps each delivery its latest attempt however old, and only that: no delivery drops out of the listing, and the log stays bounded', async () => {
  const log = new DeliveryLog(redis, keys, 3600, 5);
  await log.createMany([
    { delivery: delivery('dlv_k1', 'gen_keep'), body: '{}' },
    { delivery: delivery('dlv_k2', 'gen_keep'), body: '{}' },
  ]);
  await log.recordAttempt({ tenant: 't1', subject: 'gen_keep', id: 'dlv_k1' }, { run: 0, state: 'pending', status: 503, durationMs: 1, retryInMs: 0 });
  await log.recordAttempt({ tenant: 't1', subject: 'gen_keep', id: 'dlv_k1' }, { run: 0, state: 'pending', status: 503, durationMs: 2, retryInMs: 60_000 });
  for (let i = 0; i < 8; i++) await log.recordAttempt({ tenant: 't1', subject: 'gen_keep', id: 'dlv_k2' }, { run: 0, state: 'pending', status: 500, durationMs: i, retryInMs: 0 });
  const rows = await log.list('gen_keep', 't1');
  // before: the five newest rows only, all dlv_k2's: dlv_k1, waiting for its third attempt, was not listed at all
  expect(rows.map((r) => [r.id, r.attempt, r.state, r.status])).toEqual([
    ['dlv_k1', 2, 'pending', 503],
    ['dlv_k2', 4, 'failed', 500],
    ['dlv_k2', 5, 'failed', 500],
    ['dlv_k2', 6, 'failed', 500],
    ['dlv_k2', 7, 'failed', 500],
    ['dlv_k2', 8, 'pending', 500],
  ]);
  // bounded: the cap's rows, one more for the older delivery, each delivery and its body, the counter
  expect(await redis.hlen(keys.generationDeliveries('gen_keep'))).toBe(5 + 1 + 2 * 2 + 1);

  // a row kept that way goes once its delivery has a newer one: the log stays within the cap plus one row per delivery
  for (let round = 0; round < 10; round++) {
    await log.recordAttempt({ tenant: 't1', subject: 'gen_keep', id: 'dlv_k1' }, { run: 0, state: 'pending', status: 503, durationMs: 1, retryInMs: 0 });
    for (let i = 0; i < 6; i++) await log.recordAttempt({ tenant: 't1', subject: 'gen_keep', id: 'dlv_k2' }, { run: 0, state: 'pending', status: 500, durationMs: i, retryInMs: 0 });
  }
  const after = await log.list('gen_keep', 't1');
  expect(after.filter((r) => r.id === 'dlv_k1').map((r) => r.attempt)).toEqual([12]);
  expect(after.filter((r) => r.id === 'dlv_k2')).toHaveLength(5);
  expect(await redis.hlen(keys.generationDeliveries('gen_keep'))).toBe(5 + 1 + 2 * 2 + 1);
});

it('finds the deliveries in given states across many logs, the tenant’s only, however many fields a log holds', async () => {
  const log = new DeliveryLog(redis, keys, 3600, 1000);
  // one log large enough that a field scan takes more than one call, and logs of other subjects and tenants
  const many = Array.from({ length: 1500 }, (_, i) => ({ delivery: delivery(`dlv_m${i}`, 'gen_big'), body: `{"n":${i},"pad":"${'x'.repeat(100)}"}` }));
  await log.createMany(many);
  await log.createMany([
    { delivery: delivery('dlv_s1', 'gen_s1'), body: '{}' },
    { delivery: delivery('dlv_s2', 'gen_s2'), body: '{}' },
    { delivery: delivery('dlv_o1', 'gen_s1', 'other'), body: '{}' },
    { delivery: delivery('dlv_batch', 'batch_s'), body: '{}' },
  ]);
  for (let i = 0; i < 1500; i += 3) await log.recordAttempt({ tenant: 't1', subject: 'gen_big', id: `dlv_m${i}` }, { run: 0, state: 'exhausted', status: 500, durationMs: 1 });
  await log.recordAttempt({ tenant: 't1', subject: 'gen_s1', id: 'dlv_s1' }, { run: 0, state: 'failed', status: 410, durationMs: 1 });
  await log.recordAttempt({ tenant: 't1', subject: 'gen_s2', id: 'dlv_s2' }, { run: 0, state: 'delivered', status: 200, durationMs: 1 });
  await log.recordAttempt({ tenant: 'other', subject: 'gen_s1', id: 'dlv_o1' }, { run: 0, state: 'failed', status: 410, durationMs: 1 });
  await log.recordAttempt({ tenant: 't1', subject: 'batch_s', id: 'dlv_batch' }, { run: 0, state: 'exhausted', status: 500, durationMs: 1 });

  const found = await log.inStates(['gen_big', 'gen_s1', 'gen_s2', 'batch_s', 'gen_none'], 't1', ['failed', 'exhausted']);
  expect(found.map((d) => d.id).sort()).toEqual([...Array.from({ length: 500 }, (_, k) => `dlv_m${k * 3}`), 'dlv_s1', 'dlv_batch'].sort());
  expect(found.every((d) => d.tenant === 't1' && (d.state === 'failed' || d.state === 'exhausted'))).toBe(true);
  expect((await log.inStates(['gen_big'], 't1', ['pending'])).length).toBe(1000);

  // each starts a new run in one round trip; a delivery gone meanwhile answers null
  const runs = await log.redeliverMany([...found.slice(0, 2), { id: 'dlv_gone', subject: 'gen_s1', run: 0, state: 'failed' as const }]);
  expect(runs).toEqual([1, 1, null]);
  expect((await log.load(found[0]!.subject, found[0]!.id))?.delivery).toMatchObject({ run: 1, state: 'pending' });
  // a second call from the same read (two calls at once, or a retry) starts nothing again
  expect(await log.redeliverMany(found.slice(0, 2))).toEqual([null, null]);
  // nor does one from a read made before an attempt changed the delivery
  expect(await log.redeliverMany([(await log.load('gen_s1', 'dlv_s1'))!.delivery])).toEqual([1]);
  const before = (await log.load('gen_s1', 'dlv_s1'))!.delivery;
  expect(before).toMatchObject({ run: 1, state: 'pending' });
  await log.recordAttempt(before, { run: before.run, state: 'delivered', status: 200, durationMs: 1 });
  expect(await log.redeliverMany([before])).toEqual([null]);
  expect((await log.load('gen_s1', 'dlv_s1'))?.delivery).toMatchObject({ run: before.run, state: 'delivered' });
});

it('a redelivery call made again (its reply lost to a reconnect, ioredis sends it again) answers the runs it started and starts no other', async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  await log.createMany([1, 2].map((n) => ({ delivery: delivery(`dlv_again${n}`, 'gen_again'), body: '{}' })));
  for (const n of [1, 2]) await log.recordAttempt({ tenant: 't1', subject: 'gen_again', id: `dlv_again${n}` }, { run: 0, state: 'exhausted', status: 500, durationMs: 1 });
  const read = await log.inStates(['gen_again'], 't1', ['exhausted']);
  expect(read).toHaveLength(2);
  expect(await log.redeliverMany(read, 'call-1')).toEqual([1, 1]);
  // the same call again, from the same read: the runs it started, not null (which would leave them without a job)
  expect(await log.redeliverMany(read, 'call-1')).toEqual([1, 1]);
  // another call from that read is refused as before
  expect(await log.redeliverMany(read, 'call-2')).toEqual([null, null]);
  // the single route's call made again does not start a run more
  expect(await log.redeliver('gen_again', 'dlv_again1', 'call-3')).toBe(2);
  expect(await log.redeliver('gen_again', 'dlv_again1', 'call-3')).toBe(2);
  expect((await log.load('gen_again', 'dlv_again1'))?.delivery).toMatchObject({ run: 2, state: 'pending' });
  expect((await log.load('gen_again', 'dlv_again2'))?.delivery).toMatchObject({ run: 1, state: 'pending' });
});

describe('the index of deliveries that ended without arriving', () => {
  const refOf = (subject: string, id: string, tenant = 'idx') => ({ tenant, subject, id });

  it('notes each delivery of the tenant that ends failed or exhausted, once, by when it last ended, expiring with the log', async () => {
    const log = new DeliveryLog(redis, keys, 3600);
    const made = ['dlv_e1', 'dlv_e2', 'dlv_e3', 'dlv_e4'].map((id) => ({ delivery: delivery(id, 'gen_e', 'idx'), body: '{}' }));
    await log.createMany([...made, { delivery: delivery('dlv_e5', 'gen_e', 'idx-other'), body: '{}' }]);
    await log.recordAttempt(refOf('gen_e', 'dlv_e1'), { run: 0, state: 'failed', status: 410, durationMs: 1 });
    await log.recordAttempt(refOf('gen_e', 'dlv_e2'), { run: 0, state: 'exhausted', status: 500, durationMs: 1 });
    await log.recordAttempt(refOf('gen_e', 'dlv_e3'), { run: 0, state: 'pending', status: 500, durationMs: 1, retryInMs: 10 });
    await log.recordAttempt(refOf('gen_e', 'dlv_e4'), { run: 0, state: 'delivered', status: 200, durationMs: 1 });
    await log.recordAttempt(refOf('gen_e', 'dlv_e5', 'idx-other'), { run: 0, state: 'failed', status: 410, durationMs: 1 });
    // a stale run records nothing, and notes nothing
    await log.recordAttempt(refOf('gen_e', 'dlv_e4'), { run: 5, state: 'failed', status: 410, durationMs: 1 });

    const all = await log.endedPage('idx', 0, Date.now() + 1000, 100);
    expect(all.entries).toEqual([
      { subject: 'gen_e', id: 'dlv_e1', at: expect.any(Number) },
      { subject: 'gen_e', id: 'dlv_e2', at: expect.any(Number) },
    ]);
    expect(all.entries[0]!.at).toBeGreaterThan(Date.now() - 5000);
    expect((await log.endedPage('idx-other', 0, Date.now() + 1000, 100)).entries).toMatchObject([{ subject: 'gen_e', id: 'dlv_e5' }]);
    // the delivery keeps what its last attempt got while it has not arrived
    expect((await log.load('gen_e', 'dlv_e1'))?.delivery).toMatchObject({ state: 'failed', lastStatus: 410 });
    expect((await log.load('gen_e', 'dlv_e4'))?.delivery).not.toHaveProperty('lastStatus');
    const ttl = await redis.ttl(keys.tenantEndedDeliveries('idx'));
    expect(ttl).toBeGreaterThan(3500);
    expect(ttl).toBeLessThanOrEqual(3600);

    // sent again and failed again: one entry, moved to the later time
    const before = Number(await redis.zscore(keys.tenantEndedDeliveries('idx'), 'gen_e|dlv_e1'));
    await sleep(5);
    await log.redeliver('gen_e', 'dlv_e1');
    await log.recordAttempt(refOf('gen_e', 'dlv_e1'), { run: 1, state: 'failed', status: 410, durationMs: 1 });
    expect(await redis.zcard(keys.tenantEndedDeliveries('idx'))).toBe(2);
    expect(Number(await redis.zscore(keys.tenantEndedDeliveries('idx'), 'gen_e|dlv_e1'))).toBeGreaterThan(before);
    // a window that starts after every other ending holds only the later one
    const others = Number(await redis.zscore(keys.tenantEndedDeliveries('idx'), 'gen_e|dlv_e2'));
    expect((await log.endedPage('idx', others, Date.now() + 1000, 100, true)).entries).toMatchObject([{ subject: 'gen_e', id: 'dlv_e1' }]);
  });

  it('drops entries older than the retention as new ones come', async () => {
    const log = new DeliveryLog(redis, keys, 1);
    // each ending renews the index's expiry (1 s here); the entry older than that goes at the next
    for (const i of [0, 1, 2]) {
      if (i > 0) await sleep(600);
      await log.createMany([{ delivery: delivery(`dlv_r${i}`, `gen_r${i}`, 'idx-ret'), body: '{}' }]);
      await log.recordAttempt(refOf(`gen_r${i}`, `dlv_r${i}`, 'idx-ret'), { run: 0, state: 'failed', status: 410, durationMs: 1 });
    }
    expect(await redis.zrange(keys.tenantEndedDeliveries('idx-ret'), '0', '-1')).toEqual(['gen_r1|dlv_r1', 'gen_r2|dlv_r2']);
  });

  it('pages by time without splitting the deliveries that ended in one millisecond', async () => {
    const log = new DeliveryLog(redis, keys, 3600);
    const key = keys.tenantEndedDeliveries('idx-page');
    // 3 at 1000, 4 at 1001 (one millisecond's endings, as one batched call writes them), 1 at 1002
    await redis.zadd(key, 1000, 'gen_p|dlv_a', 1000, 'gen_p|dlv_b', 1000, 'gen_p|dlv_c', 1001, 'gen_p|dlv_d', 1001, 'gen_p|dlv_e', 1001, 'gen_p|dlv_f', 1001, 'gen_p|dlv_g', 1002, 'gen_p|dlv_h');
    const seen: string[] = [];
    const pages: number[] = [];
    let from = 1000;
    let after = false;
    for (;;) {
      const page = await log.endedPage('idx-page', from, 1002, 2, after);
      if (page.last === null) break;
      seen.push(...page.entries.map((e) => e.id));
      pages.push(page.entries.length);
      from = page.last;
      after = true;
    }
    expect(seen).toEqual(['dlv_a', 'dlv_b', 'dlv_c', 'dlv_d', 'dlv_e', 'dlv_f', 'dlv_g', 'dlv_h']);
    expect(pages).toEqual([3, 4, 1]);
    // the window's end counts
    expect((await log.endedPage('idx-page', 1000, 1000, 10)).entries.map((e) => e.id)).toEqual(['dlv_a', 'dlv_b', 'dlv_c']);
    // newest first, by the same rule
    const newest: string[][] = [];
    for (let before: number | null = null; ; ) {
      const page = await log.endedPageNewestFirst('idx-page', before, 2);
      if (page.last === null) break;
      newest.push(page.entries.map((e) => `${e.id}@${e.at}`));
      before = page.last;
    }
    expect(newest).toEqual([['dlv_h@1002', 'dlv_g@1001', 'dlv_d@1001', 'dlv_e@1001', 'dlv_f@1001'], ['dlv_c@1000', 'dlv_b@1000', 'dlv_a@1000']]);
  });
});
