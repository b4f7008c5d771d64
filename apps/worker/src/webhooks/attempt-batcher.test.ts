import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { attemptsInRun, DeliveryLog, keysFor, OVERTAKEN_ATTEMPT_ERROR, SETTLE_AND_ACQUIRE_LUA, UNFINISHED_ATTEMPT_ERROR, type Delivery } from '@imagegen/shared';
import { HostLimiter } from './host-limiter';
import { AttemptBatcher } from './attempt-batcher';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-settle-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
const GROUP = 'settle-test';
let redis: Redis;

beforeAll(() => {
  redis = new Redis(url);
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

const delivery = (id: string, subject: string): Delivery => ({
  id,
  event: 'generation.completed',
  webhookId: `msg_${id.slice(4)}`,
  url: 'https://hooks.example/x',
  tenant: 't1',
  subject,
  createdAt: Date.now(),
  state: 'pending',
  run: 0,
  attempts: 0,
});

/** A delivery log, a host limiter with these bounds (10 s leases) and a batcher over both. */
function setup(bounds: { maxInFlight: number; circuitFailures: number; circuitOpenMs: number }) {
  const log = new DeliveryLog(redis, keys, 3600);
  const limiter = new HostLimiter(redis, keys, { leaseMs: 10_000, ...bounds });
  return { log, limiter, batcher: new AttemptBatcher(redis, keys, log, limiter, GROUP) };
}

/** Outbox entries read by one consumer of the group, as the dispatcher reads them. */
async function pendingEntries(count: number): Promise<string[]> {
  const stream = keys.webhookOutbox();
  for (let i = 0; i < count; i++) await redis.xadd(stream, '*', 'n', String(i));
  await redis.xgroup('CREATE', stream, GROUP, '0').catch(() => undefined);
  const read = (await redis.xreadgroup('GROUP', GROUP, 'c1', 'COUNT', count, 'STREAMS', stream, '>')) as [string, [string, string[]][]][];
  return read[0]![1].map(([id]) => id);
}

it('attempts ending together are recorded, released and their entries settled in one call; one to retry keeps its entry', async () => {
  const { log, batcher } = setup({ maxInFlight: 5, circuitFailures: 2, circuitOpenMs: 1000 });
  const [e1, e2, e3] = await pendingEntries(3);
  await log.createMany([
    { delivery: delivery('dlv_s1', 'gen_s'), body: '{}' },
    { delivery: delivery('dlv_s2', 'gen_s'), body: '{}' },
  ]);
  await Promise.all([
    batcher.acquire({ host: 'h:1', member: 'm1', jobId: 'dlv_s1' }),
    batcher.acquire({ host: 'h:1', member: 'm2', jobId: 'dlv_s2' }),
    batcher.acquire({ host: 'h:1', member: 'm3', jobId: 'dlv_gone' }),
  ]);
  // counted on this client: the script is loaded first, so the batch is exactly one call
  await redis.script('LOAD', SETTLE_AND_ACQUIRE_LUA);
  const sent: string[] = [];
  const sendCommand = redis.sendCommand.bind(redis);
  const spy = jest.spyOn(redis, 'sendCommand').mockImplementation((command, stream) => {
    sent.push((command as { name: string }).name);
    return sendCommand(command, stream);
  });

  const [delivered, retry, gone] = await Promise.all([
    batcher.settle({ tenant: 't1', subject: 'gen_s', deliveryId: 'dlv_s1', outcome: { run: 0, state: 'delivered', status: 200, durationMs: 12 }, host: 'h:1', member: 'm1', health: 'up', entryId: e1 }),
    batcher.settle({ tenant: 't1', subject: 'gen_s', deliveryId: 'dlv_s2', outcome: { run: 0, state: 'pending', status: 503, error: 'answered 503', durationMs: 5, retryInMs: 5000 }, host: 'h:1', member: 'm2', health: 'trouble', entryId: e2 }),
    batcher.settle({ tenant: 't1', subject: 'gen_s', deliveryId: 'dlv_gone', outcome: { run: 0, state: 'delivered', status: 200, durationMs: 3 }, host: 'h:1', member: 'm3', health: 'up', entryId: e3 }),
  ]);
  spy.mockRestore();
  expect(sent).toEqual(['evalsha']);

  expect(delivered).toEqual({ recorded: 'ok', opened: false, entrySettled: true });
  expect(retry).toEqual({ recorded: 'ok', opened: false, entrySettled: false });
  expect(gone).toEqual({ recorded: 'missing', opened: false, entrySettled: true });
  // every slot is back
  expect(await redis.zcard(keys.webhookHostInFlight('h:1'))).toBe(0);
  // the entry to retry is still pending and in the stream; the others are gone from both
  const pending = (await redis.xpending(keys.webhookOutbox(), GROUP, '-', '+', 10)) as [string][];
  expect(pending.map(([id]) => id)).toEqual([e2]);
  expect((await redis.xrange(keys.webhookOutbox(), '-', '+')).map(([id]) => id)).toEqual([e2]);
  // the log holds both attempts, the retry with its next time
  const rows = await log.list('gen_s', 't1');
  expect(rows.map((r) => [r.id, r.attempt, r.state, r.status])).toEqual([
    ['dlv_s1', 1, 'delivered', 200],
    ['dlv_s2', 1, 'pending', 503],
  ]);
  expect(rows[1]!.nextAttemptAt).toEqual(expect.any(String));
});

it('an attempt without an entry (a job) settles nothing in the outbox, and failures count toward the circuit', async () => {
  const { log, limiter, batcher } = setup({ maxInFlight: 5, circuitFailures: 2, circuitOpenMs: 1000 });
  await log.createMany([
    { delivery: delivery('dlv_j1', 'gen_j'), body: '{}' },
    { delivery: delivery('dlv_j2', 'gen_j'), body: '{}' },
  ]);
  await Promise.all([batcher.acquire({ host: 'k:1', member: 'a', jobId: 'dlv_j1' }), batcher.acquire({ host: 'k:1', member: 'b', jobId: 'dlv_j2' })]);
  const failed = { run: 0, state: 'pending' as const, error: 'timed out', durationMs: 100, retryInMs: 1000 };
  const results = await Promise.all([
    batcher.settle({ tenant: 't1', subject: 'gen_j', deliveryId: 'dlv_j1', outcome: failed, host: 'k:1', member: 'a', health: 'trouble' }),
    batcher.settle({ tenant: 't1', subject: 'gen_j', deliveryId: 'dlv_j2', outcome: failed, host: 'k:1', member: 'b', health: 'trouble' }),
  ]);
  expect(results.map((r) => [r.recorded, r.opened, r.entrySettled])).toEqual([
    ['ok', false, false],
    ['ok', true, false],
  ]);
  expect(await limiter.acquire('k:1', 'c', 'dlv_j3')).toMatchObject({ kind: 'open' });
});

it('slots asked for in one turn follow the bound in order; a slot given back in the same turn is there for them', async () => {
  const { log, limiter, batcher } = setup({ maxInFlight: 2, circuitFailures: 3, circuitOpenMs: 1000 });
  const slots = await Promise.all([
    batcher.acquire({ host: 'p:1', member: 'm1', jobId: 'j1' }),
    batcher.acquire({ host: 'q:1', member: 'm2', jobId: 'j2' }),
    batcher.acquire({ host: 'p:1', member: 'm3', jobId: 'j3' }),
    batcher.acquire({ host: 'p:1', member: 'm4', jobId: 'j4' }),
  ]);
  expect(slots.map((s) => s.kind)).toEqual(['ok', 'ok', 'ok', 'busy']);
  await limiter.unpark('p:1', 'j4');
  await log.createMany([{ delivery: delivery('dlv_p1', 'gen_p'), body: '{}' }]);
  // asked for before the release in the same turn, the slot still goes to it
  const [next, ended] = await Promise.all([
    batcher.acquire({ host: 'p:1', member: 'm5', jobId: 'j5' }),
    batcher.settle({ tenant: 't1', subject: 'gen_p', deliveryId: 'dlv_p1', outcome: { run: 0, state: 'delivered', status: 200, durationMs: 1 }, host: 'p:1', member: 'm1', health: 'up' }),
  ]);
  expect(next).toEqual({ kind: 'ok' });
  expect(ended).toMatchObject({ recorded: 'ok', entrySettled: false });
  expect((await redis.zrange(keys.webhookHostInFlight('p:1'), '0', '-1')).sort()).toEqual(['m3', 'm5']);
});

it('within one call, later steps see what earlier ones changed: a circuit opened, a parked delivery woken, the failure count cleared and counted again', async () => {
  const { log, batcher } = setup({ maxInFlight: 2, circuitFailures: 2, circuitOpenMs: 5000 });
  await log.createMany(['dlv_w1', 'dlv_w2', 'dlv_w3', 'dlv_w4'].map((id) => ({ delivery: delivery(id, 'gen_w'), body: '{}' })));
  // host w: both slots taken, one delivery parked; host x: one slot taken
  const taken = await Promise.all([
    batcher.acquire({ host: 'w:1', member: 'a', jobId: 'dlv_w1' }),
    batcher.acquire({ host: 'w:1', member: 'b', jobId: 'dlv_w2' }),
    batcher.acquire({ host: 'w:1', member: 'c', jobId: 'parked-1' }),
    batcher.acquire({ host: 'x:1', member: 'd', jobId: 'dlv_w3' }),
  ]);
  expect(taken.map((s) => s.kind)).toEqual(['ok', 'ok', 'busy', 'ok']);
  const ok = { run: 0, state: 'delivered' as const, status: 200, durationMs: 1 };
  const failed = { run: 0, state: 'pending' as const, error: 'answered 503', status: 503, durationMs: 1, retryInMs: 1000 };
  // one call: w succeeds then fails (its slot goes to the parked one, the count starts at 1), x fails twice (the second opens
  // its circuit), then attempts starting on x (open, seen in the same call) and on w (a slot is free again)
  const [w1, w2, x1, x2, xNext, wNext] = await Promise.all([
    batcher.settle({ tenant: 't1', subject: 'gen_w', deliveryId: 'dlv_w1', outcome: ok, host: 'w:1', member: 'a', health: 'up' }),
    batcher.settle({ tenant: 't1', subject: 'gen_w', deliveryId: 'dlv_w2', outcome: failed, host: 'w:1', member: 'b', health: 'trouble' }),
    batcher.settle({ tenant: 't1', subject: 'gen_w', deliveryId: 'dlv_w3', outcome: failed, host: 'x:1', member: 'd', health: 'trouble' }),
    batcher.settle({ tenant: 't1', subject: 'gen_w', deliveryId: 'dlv_w4', outcome: failed, host: 'x:1', member: 'e', health: 'trouble' }),
    batcher.acquire({ host: 'x:1', member: 'f', jobId: 'dlv_x5' }),
    batcher.acquire({ host: 'w:1', member: 'g', jobId: 'dlv_w6' }),
  ]);
  expect(w1).toMatchObject({ recorded: 'ok', opened: false, wake: 'parked-1' });
  expect(w2).toMatchObject({ recorded: 'ok', opened: false });
  expect(w2).not.toHaveProperty('wake');
  expect([x1, x2].map((r) => r.opened)).toEqual([false, true]);
  expect(xNext).toMatchObject({ kind: 'open' });
  expect(wNext).toEqual({ kind: 'ok' });
  expect(await redis.get(keys.webhookHostFailures('w:1'))).toBe('1');
  expect(await redis.zrange(keys.webhookHostInFlight('w:1'), '0', '-1')).toEqual(['g']);
  expect(await redis.zcard(keys.webhookHostParked('w:1'))).toBe(0);
  expect(await redis.pttl(keys.webhookHostInFlight('w:1'))).toBeGreaterThan(0);
});

it('deliveries that end failed or exhausted in one call are noted in their own tenant’s index, the others not', async () => {
  const { log, batcher } = setup({ maxInFlight: 10, circuitFailures: 100, circuitOpenMs: 1000 });
  await log.createMany(['dlv_n1', 'dlv_n2', 'dlv_n3', 'dlv_n4'].map((id, i) => ({ delivery: { ...delivery(id, `gen_n${i}`), tenant: i % 2 ? 'tb' : 'ta' }, body: '{}' })));
  const ending = (i: number, state: 'failed' | 'exhausted' | 'delivered') =>
    batcher.settle({ tenant: i % 2 ? 'tb' : 'ta', subject: `gen_n${i}`, deliveryId: `dlv_n${i + 1}`, outcome: { run: 0, state, status: state === 'delivered' ? 200 : 410, durationMs: 1 }, host: 'n:1', member: `m${i}`, health: 'up' });
  const results = await Promise.all([ending(0, 'failed'), ending(1, 'exhausted'), ending(2, 'delivered'), ending(3, 'failed')]);
  expect(results.map((r) => r.recorded)).toEqual(['ok', 'ok', 'ok', 'ok']);
  const until = Date.now() + 1000;
  expect((await log.endedPage('ta', 0, until, 10)).entries).toMatchObject([{ subject: 'gen_n0', id: 'dlv_n1' }]);
  expect((await log.endedPage('tb', 0, until, 10)).entries.map((e) => e.id).sort()).toEqual(['dlv_n2', 'dlv_n4']);
});

it('attempts recorded in one call keep each log as long as its own subject: no expiry while the record has none, else the retention', async () => {
  const { log, batcher } = setup({ maxInFlight: 10, circuitFailures: 100, circuitOpenMs: 1000 });
  // gen_w1's record has no expiry (under way, or held by its running batch); gen_w2's ended (the retention); gen_w3 has none
  await redis.hset(keys.generation('gen_w1'), 'id', 'gen_w1');
  await redis.hset(keys.generation('gen_w2'), 'id', 'gen_w2');
  await redis.expire(keys.generation('gen_w2'), 3600);
  await log.createMany(['gen_w1', 'gen_w2', 'gen_w3'].map((subject, i) => ({ delivery: delivery(`dlv_w${i + 1}`, subject), body: '{}' })));
  // the logs as another writer (an older release) may have left them: with the retention
  for (const subject of ['gen_w1', 'gen_w2', 'gen_w3']) await redis.expire(log.keyOf(subject), 3600);
  const results = await Promise.all(
    ['gen_w1', 'gen_w2', 'gen_w3'].map((subject, i) =>
      batcher.settle({ tenant: 't1', subject, deliveryId: `dlv_w${i + 1}`, outcome: { run: 0, state: 'delivered', status: 200, durationMs: 1 }, host: 'w:1', member: `mw${i}`, health: 'up' }),
    ),
  );
  expect(results.map((r) => r.recorded)).toEqual(['ok', 'ok', 'ok']);
  const ttls = await Promise.all(['gen_w1', 'gen_w2', 'gen_w3'].map((subject) => redis.ttl(log.keyOf(subject))));
  expect(ttls[0]).toBe(-1);
  expect(ttls[1]).toBeGreaterThan(3500);
  expect(ttls[2]).toBeGreaterThan(3500);
});

it('an attempt that starts is marked started in its log once it has its slot (not while parked), and its record clears the mark, in the same calls', async () => {
  const { log, batcher } = setup({ maxInFlight: 1, circuitFailures: 3, circuitOpenMs: 1000 });
  await log.createMany([
    { delivery: delivery('dlv_k1', 'gen_k1'), body: '{}' },
    { delivery: delivery('dlv_k2', 'gen_k2'), body: '{}' },
  ]);
  const mark = (subject: string, id: string) => redis.hget(keys.generationDeliveries(subject), `s:${id}`);
  const [first, second] = await Promise.all([
    batcher.acquire({ host: 'n:1', member: 'dlv_k1:c1', jobId: 'dlv_k1', starts: { subject: 'gen_k1', run: 0 } }),
    batcher.acquire({ host: 'n:1', member: 'dlv_k2:c1', jobId: 'dlv_k2', starts: { subject: 'gen_k2', run: 0 } }),
  ]);
  expect([first.kind, second.kind]).toEqual(['ok', 'busy']);
  expect(await mark('gen_k1', 'dlv_k1')).toMatch(/^0\|\d+\|dlv_k1:c1$/);
  expect(await mark('gen_k2', 'dlv_k2')).toBeNull();
  // the first ends and the second takes the freed slot in one call: the marks follow
  const [ended, next] = await Promise.all([
    batcher.settle({ tenant: 't1', subject: 'gen_k1', deliveryId: 'dlv_k1', outcome: { run: 0, state: 'delivered', status: 200, durationMs: 1 }, host: 'n:1', member: 'dlv_k1:c1', health: 'up' }),
    batcher.acquire({ host: 'n:1', member: 'dlv_k2:c1', jobId: 'dlv_k2', starts: { subject: 'gen_k2', run: 0 } }),
  ]);
  expect(ended.recorded).toBe('ok');
  expect(next.kind).toBe('ok');
  expect(await mark('gen_k1', 'dlv_k1')).toBeNull();
  expect(await mark('gen_k2', 'dlv_k2')).toMatch(/^0\|\d+\|dlv_k2:c1$/);
  // its worker dies mid-request: the next attempt to start logs it first, cut short
  await batcher.settle({ tenant: 't1', subject: 'gen_k2', deliveryId: 'dlv_k2', outcome: { run: 0, state: 'pending', error: 'x', durationMs: 1, retryInMs: 0 }, host: 'n:1', member: 'other', health: 'unknown' });
  await redis.hset(keys.generationDeliveries('gen_k2'), 's:dlv_k2', `0|${Date.now()}|dlv_k2:dead`);
  await redis.del(keys.webhookHostInFlight('n:1'));
  expect((await batcher.acquire({ host: 'n:1', member: 'dlv_k2:c2', jobId: 'dlv_k2', starts: { subject: 'gen_k2', run: 0 } })).kind).toBe('ok');
  expect((await log.list('gen_k2', 't1')).map((r) => [r.attempt, r.state, r.error])).toEqual([
    [1, 'failed', 'x'],
    [2, 'pending', UNFINISHED_ATTEMPT_ERROR],
  ]);
});

it('an attempt that ends takes back its own mark only: a late answer leaves the mark of the attempt under way; a delivery gone gets no mark', async () => {
  const { log, batcher } = setup({ maxInFlight: 5, circuitFailures: 3, circuitOpenMs: 1000 });
  await log.createMany([{ delivery: delivery('dlv_o1', 'gen_o1'), body: '{}' }]);
  const mark = () => redis.hget(keys.generationDeliveries('gen_o1'), 's:dlv_o1');
  expect((await batcher.acquire({ host: 'o:1', member: 'dlv_o1:now', jobId: 'dlv_o1', starts: { subject: 'gen_o1', run: 0 } })).kind).toBe('ok');
  // the answer of an attempt whose mark was taken over by this one comes late
  await batcher.settle({ tenant: 't1', subject: 'gen_o1', deliveryId: 'dlv_o1', outcome: { run: 0, state: 'pending', status: 500, durationMs: 1, retryInMs: 0 }, host: 'o:1', member: 'dlv_o1:late', health: 'unknown' });
  expect(await mark()).toMatch(/\|dlv_o1:now$/);
  await batcher.settle({ tenant: 't1', subject: 'gen_o1', deliveryId: 'dlv_o1', outcome: { run: 0, state: 'delivered', status: 200, durationMs: 1 }, host: 'o:1', member: 'dlv_o1:now', health: 'up' });
  expect(await mark()).toBeNull();
  // the log went (retention) while the attempt waited to start: nothing is written back without an expiry
  expect((await batcher.acquire({ host: 'o:1', member: 'dlv_o2:c', jobId: 'dlv_o2', starts: { subject: 'gen_o2', run: 0 } })).kind).toBe('ok');
  expect(await redis.exists(keys.generationDeliveries('gen_o2'))).toBe(0);
});

it('an ending recorded again (the call made twice, as a client does after reconnecting) is recorded once and answers as the first did', async () => {
  const { log, batcher } = setup({ maxInFlight: 5, circuitFailures: 3, circuitOpenMs: 1000 });
  const [entry] = await pendingEntries(1);
  await log.createMany([{ delivery: delivery('dlv_r1', 'gen_r1'), body: '{}' }]);
  await batcher.acquire({ host: 'r:1', member: 'dlv_r1:c:1', jobId: 'dlv_r1', starts: { subject: 'gen_r1', run: 0 } });
  const step = { tenant: 't1', subject: 'gen_r1', deliveryId: 'dlv_r1', outcome: { run: 0, state: 'pending' as const, status: 503, durationMs: 2, retryInMs: 5000 }, host: 'r:1', member: 'dlv_r1:c:1', health: 'trouble' as const, entryId: entry };
  const first = await batcher.settle(step);
  const again = await batcher.settle(step);
  expect(again).toEqual(first);
  expect(first).toMatchObject({ recorded: 'ok', entrySettled: false });
  // before: two rows, and the run counted two attempts (a step of the schedule skipped)
  expect((await log.list('gen_r1', 't1')).map((r) => [r.attempt, r.state])).toEqual([[1, 'pending']]);
  expect(attemptsInRun((await log.load('gen_r1', 'dlv_r1'))!.delivery)).toBe(1);
  // its host's failure counted once toward the circuit
  expect(await redis.get(keys.webhookHostFailures('r:1'))).toBe('1');
  // the next attempt (another member) is recorded
  await batcher.acquire({ host: 'r:1', member: 'dlv_r1:c:2', jobId: 'dlv_r1', starts: { subject: 'gen_r1', run: 0 } });
  expect((await batcher.settle({ ...step, member: 'dlv_r1:c:2', outcome: { run: 0, state: 'delivered', status: 200, durationMs: 1 } })).recorded).toBe('ok');
  expect((await log.list('gen_r1', 't1')).map((r) => [r.attempt, r.state])).toEqual([
    [1, 'failed'],
    [2, 'delivered'],
  ]);
});

it('an attempt that a redelivery overtook is logged with what its endpoint answered, once, and the new run carries on unchanged', async () => {
  const { log, batcher } = setup({ maxInFlight: 5, circuitFailures: 3, circuitOpenMs: 1000 });
  const [entry] = await pendingEntries(1);
  await log.createMany([{ delivery: delivery('dlv_v1', 'gen_v1'), body: '{}' }]);
  await batcher.acquire({ host: 'v:1', member: 'dlv_v1:c:1', jobId: 'dlv_v1', starts: { subject: 'gen_v1', run: 0 } });
  // redelivered while the first attempt waits for its answer
  expect(await log.redeliver('gen_v1', 'dlv_v1')).toBe(1);
  const step = { tenant: 't1', subject: 'gen_v1', deliveryId: 'dlv_v1', outcome: { run: 0, state: 'delivered' as const, status: 200, durationMs: 40 }, host: 'v:1', member: 'dlv_v1:c:1', health: 'up' as const, entryId: entry };
  expect(await batcher.settle(step)).toMatchObject({ recorded: 'stale', entrySettled: true });
  // the same call again (a reconnect) adds nothing
  expect(await batcher.settle(step)).toMatchObject({ recorded: 'stale' });
  // before: no row at all for a request the endpoint received and answered; the new run waits for its first attempt
  expect((await log.list('gen_v1', 't1')).map((r) => [r.attempt, r.status, r.state])).toEqual([
    [1, 200, 'delivered'],
    [0, undefined, 'pending'],
  ]);
  const { delivery: now } = (await log.load('gen_v1', 'dlv_v1'))!;
  expect(now).toMatchObject({ run: 1, state: 'pending', attempts: 1 });
  expect(attemptsInRun(now)).toBe(0);
  // the new run's own attempt follows it in the log
  await batcher.acquire({ host: 'v:1', member: 'dlv_v1:c:2', jobId: 'dlv_v1', starts: { subject: 'gen_v1', run: 1 } });
  expect((await batcher.settle({ ...step, entryId: undefined, member: 'dlv_v1:c:2', outcome: { run: 1, state: 'failed', status: 410, durationMs: 1 } })).recorded).toBe('ok');
  expect((await log.list('gen_v1', 't1')).map((r) => [r.attempt, r.status, r.state])).toEqual([
    [1, 200, 'delivered'],
    [2, 410, 'failed'],
  ]);
});

it('an attempt a redelivery overtook is logged in its place once the new run starts, and its late answer fills that row', async () => {
  const { log, batcher } = setup({ maxInFlight: 5, circuitFailures: 3, circuitOpenMs: 1000 });
  await log.createMany([{ delivery: delivery('dlv_v2', 'gen_v2'), body: '{}' }]);
  await batcher.acquire({ host: 'v:2', member: 'old', jobId: 'dlv_v2', starts: { subject: 'gen_v2', run: 0 } });
  expect(await log.redeliver('gen_v2', 'dlv_v2')).toBe(1);
  // the new run's first attempt starts while the old one still waits for its answer
  await batcher.acquire({ host: 'v:2', member: 'new', jobId: 'dlv_v2', starts: { subject: 'gen_v2', run: 1 } });
  const rows = async () => (await log.list('gen_v2', 't1')).map((r) => [r.attempt, r.state, r.status ?? r.error]);
  expect(await rows()).toEqual([
    [1, 'failed', OVERTAKEN_ATTEMPT_ERROR],
    [0, 'pending', undefined],
  ]);
  const step = { tenant: 't1', subject: 'gen_v2', deliveryId: 'dlv_v2', host: 'v:2', health: 'up' as const };
  expect((await batcher.settle({ ...step, member: 'new', outcome: { run: 1, state: 'delivered', status: 200, durationMs: 2 } })).recorded).toBe('ok');
  // the old attempt is answered last: its row, before the new run's, takes the answer (before: it came
  // after the new run's row, and the delivery's last row said failed though it was delivered)
  const late = { ...step, member: 'old', health: 'trouble' as const, outcome: { run: 0, state: 'pending' as const, status: 500, durationMs: 900, retryInMs: 5000 } };
  expect((await batcher.settle(late)).recorded).toBe('stale');
  expect((await batcher.settle(late)).recorded).toBe('stale');
  const expected = [
    [1, 'failed', 500],
    [2, 'delivered', 200],
  ];
  expect(await rows()).toEqual(expected);
  expect((await log.list('gen_v2', 't1'))[0]!.durationMs).toBe(900);
  expect((await log.load('gen_v2', 'dlv_v2'))!.delivery).toMatchObject({ run: 1, state: 'delivered', attempts: 2 });
  expect(await redis.hexists(log.keyOf('gen_v2'), 'x:dlv_v2:old')).toBe(0);
});

it('attempts overtaken by two redeliveries in turn each take their own late answer in their own row', async () => {
  const { log, batcher } = setup({ maxInFlight: 5, circuitFailures: 3, circuitOpenMs: 1000 });
  await log.createMany([{ delivery: delivery('dlv_v3', 'gen_v3'), body: '{}' }]);
  await batcher.acquire({ host: 'v:3', member: 'a', jobId: 'dlv_v3', starts: { subject: 'gen_v3', run: 0 } });
  expect(await log.redeliver('gen_v3', 'dlv_v3')).toBe(1);
  await batcher.acquire({ host: 'v:3', member: 'b', jobId: 'dlv_v3', starts: { subject: 'gen_v3', run: 1 } });
  expect(await log.redeliver('gen_v3', 'dlv_v3')).toBe(2);
  await batcher.acquire({ host: 'v:3', member: 'c', jobId: 'dlv_v3', starts: { subject: 'gen_v3', run: 2 } });
  const step = { tenant: 't1', subject: 'gen_v3', deliveryId: 'dlv_v3', host: 'v:3', health: 'up' as const };
  // the first overtaken attempt answers last (before: its note was replaced by the second's, and its answer added a row at the end)
  expect((await batcher.settle({ ...step, member: 'c', outcome: { run: 2, state: 'delivered', status: 200, durationMs: 1 } })).recorded).toBe('ok');
  expect((await batcher.settle({ ...step, member: 'b', outcome: { run: 1, state: 'pending', status: 502, durationMs: 1, retryInMs: 10 } })).recorded).toBe('stale');
  expect((await batcher.settle({ ...step, member: 'a', outcome: { run: 0, state: 'pending', status: 503, durationMs: 1, retryInMs: 10 } })).recorded).toBe('stale');
  expect((await log.list('gen_v3', 't1')).map((r) => [r.attempt, r.state, r.status ?? r.error])).toEqual([
    [1, 'failed', 503],
    [2, 'failed', 502],
    [3, 'delivered', 200],
  ]);
});
